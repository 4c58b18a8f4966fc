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
* CVE-2023-23969 (fixed in 3.2.17, 4.0.9, 4.1.6): a large ``Accept-Language`` header took
  long to parse, and LocaleMiddleware parses every request's. As in the fix, a header over
  500 characters is cut at its last comma within them (or ignored, without one).
* CVE-2024-39614 (fixed in 4.2.14, 5.0.7): ``get_supported_language_variant()`` took long
  on very long strings, which the language cookie carries to it. As in the fix, a code over
  500 characters is no language.
"""
from django.db.models import query
from django.utils.translation import trans_real

_filter_or_exclude = query.QuerySet._filter_or_exclude
PRIVATE_Q_ARGUMENTS = ("_connector", "_negated")


def _refuse_private_q_arguments(self, negate, *args, **kwargs):
    refused = [name for name in PRIVATE_Q_ARGUMENTS if name in kwargs]
    if refused:
        raise TypeError("%s is not a valid lookup (CVE-2025-64459)" % ", ".join(refused))
    return _filter_or_exclude(self, negate, *args, **kwargs)


ACCEPT_LANGUAGE_HEADER_MAX_LENGTH = 500
_parse_accept_lang_header = trans_real.parse_accept_lang_header
_get_supported_language_variant = trans_real.get_supported_language_variant


def _parse_bounded_accept_lang_header(lang_string):
    if len(lang_string) > ACCEPT_LANGUAGE_HEADER_MAX_LENGTH:
        cut = lang_string.rfind(",", 0, ACCEPT_LANGUAGE_HEADER_MAX_LENGTH)
        if cut < 0:
            return ()
        lang_string = lang_string[:cut]
    return _parse_accept_lang_header(lang_string)


def _bounded_supported_language_variant(lang_code, strict=False):
    if lang_code and len(lang_code) > ACCEPT_LANGUAGE_HEADER_MAX_LENGTH:
        raise LookupError(lang_code[:20] + "...")
    return _get_supported_language_variant(lang_code, strict)


def install():
    query.QuerySet._filter_or_exclude = _refuse_private_q_arguments
    # get_language_from_request (LocaleMiddleware) calls both through the module's names.
    trans_real.parse_accept_lang_header = _parse_bounded_accept_lang_header
    trans_real.get_supported_language_variant = _bounded_supported_language_variant
