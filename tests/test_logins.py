"""Failed logins are counted per username and per client address, and a lock-out says how long it lasts
(channels_example/logins.py); Django's client plays the browsers, each address a REMOTE_ADDR."""
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import F, Sum

LIMIT = settings.AXES_FAILURE_LIMIT
COOL_OFF = settings.AXES_COOLOFF_TIME.total_seconds()


@pytest.fixture
def users(db):
    for name in ("ann", "eve"):
        get_user_model().objects.create_user(name, password="%s-password-1" % name)


def log_in(client, username, password, address="198.51.100.1", path="/accounts/login/"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


def fail(client, times, username="ann", address="198.51.100.1"):
    return [log_in(client, username, "wrong", address).status_code for _ in range(times)]


def failures_counted():
    return AccessAttempt.objects.aggregate(total=Sum("failures_since_start"))["total"]


def test_the_limit_for_a_username_is_reached_from_any_addresses_and_then_the_right_password_waits(client, users):
    statuses = [log_in(client, "ann", "wrong", "203.0.113.%d" % number).status_code for number in range(LIMIT)]
    refused = log_in(client, "ann", "ann-password-1", "192.0.2.77")
    assert statuses == [200] * (LIMIT - 1) + [429]
    assert refused.status_code == 429
    assert COOL_OFF - 5 <= int(refused["Retry-After"]) <= COOL_OFF
    assert "Too many failed logins for this username: try again in 1" in refused.content.decode()


def test_the_limit_for_an_address_is_reached_over_any_usernames_and_locks_it_for_everyone(client, users):
    statuses = [log_in(client, "guess-%d" % number, "wrong", "203.0.113.9").status_code for number in range(LIMIT)]
    from_there = log_in(client, "eve", "eve-password-1", "203.0.113.9")
    from_elsewhere = log_in(client, "eve", "eve-password-1", "192.0.2.77")
    assert statuses == [200] * (LIMIT - 1) + [429]
    assert from_there.status_code == 429
    assert "Too many failed logins from your address" in from_there.content.decode()
    assert from_elsewhere.status_code == 302


def test_a_refused_login_is_not_counted_so_the_lock_out_ends_a_cool_off_after_it_began(client, users):
    fail(client, LIMIT)
    first = log_in(client, "ann", "wrong")
    refused = [log_in(client, "ann", "wrong") for _ in range(20)]
    assert failures_counted() == LIMIT
    assert all(response.status_code == 429 for response in refused)
    assert int(refused[-1]["Retry-After"]) <= int(first["Retry-After"])


def test_when_the_cool_off_has_passed_the_right_password_logs_in(client, users):
    fail(client, LIMIT)
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(seconds=COOL_OFF))  # the clock moves on
    assert log_in(client, "ann", "ann-password-1").status_code == 302


def test_a_success_clears_that_usernames_failures_from_that_address_and_nothing_else(client, users):
    fail(client, 3, "ann", "192.0.2.1")  # ann's own typos
    fail(client, 5, "ann", "203.0.113.9")  # a guesser's, who has an account of its own
    fail(client, 1, "eve", "203.0.113.9")
    assert log_in(client, "ann", "ann-password-1", "192.0.2.1").status_code == 302
    assert log_in(client, "eve", "eve-password-1", "203.0.113.9").status_code == 302
    left = sorted(AccessAttempt.objects.values_list("username", "ip_address", "failures_since_start"))
    assert left == [("ann", "203.0.113.9", 5)]


def test_the_admins_login_is_counted_and_refused_the_same_way(client, users):
    statuses = [log_in(client, "ann", "wrong", path="/admin/login/").status_code for _ in range(LIMIT)]
    assert statuses == [200] * (LIMIT - 1) + [429]
    assert log_in(client, "ann", "ann-password-1").status_code == 429


def test_the_address_counted_is_the_one_daphne_gave_not_a_header_the_client_sent(client, users):
    for number in range(LIMIT):
        client.post("/accounts/login/", {"username": "ann", "password": "wrong"}, REMOTE_ADDR="203.0.113.9",
                    HTTP_X_FORWARDED_FOR="192.0.2.%d" % number)
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"203.0.113.9"}
