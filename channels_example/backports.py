"""Security fixes of later Django releases that this project reaches, backported to Django 2.2.

Django 2.2 is the ceiling for channels 1.x (Django 3.0 needs asgiref 3, channels 1.x needs
asgiref 1.x), and gets no security releases since 2.2.28 (docs/security.md). What the
bounds in daphne (channels_example.interface) cannot close, and the project reaches, is
mended here, each with the advisory that names it; ``install()`` runs once, from
``ChatConfig.ready()``, before any request is served.

* CVE-2025-64459 (fixed in Django 4.2.26, 5.1.14, 5.2.8): ``filter()``, ``exclude()`` and
  ``get()`` took ``_connector`` and ``_negated`` as keyword arguments and passed them to
  ``Q``, so a dictionary of lookups from a request (the admin's change list filters) could
  inject SQL. As in the fix, those two names are refused.
* CVE-2024-39329 (fixed in 4.2.14, 5.0.7): authenticating a user whose password is
  unusable ran no password hasher, so the login page told, by its speed, which usernames
  exist. channels_example.accounts.CachedModelBackend runs the hasher for them too.
"""
from django.db.models import query

_filter_or_exclude = query.QuerySet._filter_or_exclude
PRIVATE_Q_ARGUMENTS = ("_connector", "_negated")


def _refuse_private_q_arguments(self, negate, *args, **kwargs):
    refused = [name for name in PRIVATE_Q_ARGUMENTS if name in kwargs]
    if refused:
        raise TypeError("%s is not a valid lookup (CVE-2025-64459)" % ", ".join(refused))
    return _filter_or_exclude(self, negate, *args, **kwargs)


def install():
    query.QuerySet._filter_or_exclude = _refuse_private_q_arguments
