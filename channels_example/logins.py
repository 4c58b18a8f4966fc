"""Failed logins, throttled: django-axes 5.27.0 (the last release for Django 2.2), changed in two ways.

Every HTTP request of channels 1.x is handled by one of several workers, so the counts live
where all of them see the same: axes' ``AccessAttempt`` rows in the database (one per
username, address and user agent, with its failures and the time of the last one). A login
for a username with AXES_FAILURE_LIMIT failures, or from an address with as many, within
AXES_COOLOFF_TIME is refused by ``CachedModelBackend`` (an ``AxesBackend``, accounts.py)
before any password is hashed, on ``/accounts/login/`` and ``/admin/login/`` alike, and
axes' middleware answers it with ``refuse``. The address is the one daphne saw, or the first
of X-Forwarded-For under ``--proxy-headers`` (settings.AXES_META_PRECEDENCE_ORDER).

What ``FailedLogins`` changes in axes' database handler, and why:

* **A refused login is not counted again.** axes counts it as one more failure, which moves
  the end of the lock-out forward: a script that kept trying would keep a name locked for
  good, and each try appended its form to the row, which grew without bound. Here a
  lock-out ends AXES_COOLOFF_TIME after the failure that started it, and the rows hold at
  most AXES_FAILURE_LIMIT failures' worth.
* **A success clears that username's failures from that address, and nothing else.** axes'
  AXES_RESET_ON_SUCCESS deletes every row of the username *or* of the address: a client with
  an account of its own could log in between guesses to wipe its address's failures, and
  with them its failures on every name it guesses.

``refuse`` answers 429 with ``Retry-After`` and the login page saying whose failures (the
username's, the address's) locked it and how long is left.
"""
import logging
import math

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import render
from django.utils.timezone import now
from django.utils.translation import gettext, gettext_noop

log = logging.getLogger(__name__)


class FailedLogins(AxesDatabaseHandler):
    """axes' database handler, with the two changes the module docstring gives."""

    def user_login_failed(self, sender, credentials, request=None, **kwargs):
        if request is not None and self.is_locked(request, credentials):
            # Refused by the backend before any password was checked: not a guess, not counted.
            request.axes_locked_out, request.axes_credentials = True, credentials
            return
        super().user_login_failed(sender, credentials, request, **kwargs)

    def user_logged_in(self, sender, request, user, **kwargs):
        super().user_logged_in(sender, request, user, **kwargs)
        AccessAttempt.objects.filter(username=user.get_username(), ip_address=request.axes_ip_address).delete()


def locks(request, credentials):
    """``[(whose, seconds left)]`` for each count at the limit: ``"username"``, ``"address"``."""
    limit, cool_off = get_failure_limit(request, credentials), get_cool_off()
    since = now() - cool_off
    counts = [("username", {"username": get_client_username(request, credentials)}),
              ("address", {"ip_address": request.axes_ip_address})]
    found = []
    for whose, matching in counts:
        failures = 0
        for count, last in AccessAttempt.objects.filter(attempt_time__gte=since, **matching).order_by(
                "-attempt_time").values_list("failures_since_start", "attempt_time"):
            failures += count
            if failures >= limit:  # the lock-out ends when this row leaves the cool-off window
                found.append((whose, (last + cool_off - now()).total_seconds()))
                break
    return found


def refuse(request, credentials):
    """The answer to a locked-out login: 429, Retry-After, and the login page saying why and for how long."""
    found = locks(request, credentials)
    wait = max([seconds for _, seconds in found] + [1])
    whose = {name for name, _ in found}
    sentence = (LOCKED_BOTH if whose == {"username", "address"} else LOCKED_ADDRESS if whose == {"address"}
                else LOCKED_USERNAME if whose == {"username"} else LOCKED_EITHER)
    message = gettext(sentence) % {"wait": _duration(wait, gettext)}
    username = get_client_username(request, credentials)
    log.warning("refused a login for %r from %s: %s", username, request.axes_ip_address,
                sentence % {"wait": _duration(wait, lambda text: text)})
    form = AuthenticationForm(request, initial={"username": username})
    response = render(request, "registration/login.html", {
        "form": form, "locked_out": message, "next": request.POST.get("next", request.GET.get("next", ""))},
        status=429)
    response["Retry-After"] = str(math.ceil(wait))
    return response


# The login page says it in the reader's language (locale/); the log line in English.
LOCKED_USERNAME = gettext_noop("Too many failed logins for this username: try again in %(wait)s.")
LOCKED_ADDRESS = gettext_noop("Too many failed logins from your address: try again in %(wait)s.")
LOCKED_BOTH = gettext_noop("Too many failed logins for this username and from your address: try again in %(wait)s.")
LOCKED_EITHER = gettext_noop("Too many failed logins for this username or from your address: try again in %(wait)s.")
MINUTES, SECONDS = gettext_noop("%(minutes)d min %(seconds)d s"), gettext_noop("%(seconds)d s")


def _duration(seconds, translated):
    minutes, seconds = divmod(math.ceil(seconds), 60)
    if minutes:
        return translated(MINUTES) % {"minutes": minutes, "seconds": seconds}
    return translated(SECONDS) % {"seconds": seconds}
