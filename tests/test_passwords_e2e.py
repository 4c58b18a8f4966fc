"""End to end, with daphne, two runworkers and redis-server: real passwords, a password-change page
that closes the user's other sockets, and failed logins throttled across both workers
(docs/accounts.md, docs/security.md#logins-and-passwords)."""
import asyncio
import concurrent.futures
import html
import re
import sqlite3
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

from django.conf import settings

from tests.chatclient import TIMEOUT, join, joined, run
from tests.servers import manage
from tests.test_accounts_e2e import PASSWORD, SIGNED_OUT, Browser

LIMIT = settings.AXES_FAILURE_LIMIT


def submit(browser, path, **fields):
    """GET the form at ``path`` for its CSRF token and POST it as a browser would: ``(status, final URL, page)``."""
    page = browser.get(path)
    fields["csrfmiddlewaretoken"] = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    url = "http://127.0.0.1:%d%s" % (browser.port, path)
    request = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(), headers={"Referer": url})
    try:
        with browser.opener.open(request, timeout=TIMEOUT) as answer:
            return answer.status, answer.geturl(), answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.geturl(), refused.read().decode()


def failures_counted(stack):
    """The failed logins axes counted: the guesses whose password was checked."""
    with sqlite3.connect(stack.env["SQLITE_PATH"], timeout=20) as connection:
        return connection.execute("SELECT COALESCE(SUM(failures_since_start), 0) FROM axes_accessattempt").fetchone()[0]


def errors(page):
    return [html.unescape(error) for error in re.findall(r'<p class="form-error" role="alert">(.*?)</p>', page)]


def test_sign_up_refuses_each_weak_password_with_djangos_reason(production):
    stack = production(workers=2)
    weak = {"x": "This password is too short. It must contain at least 8 characters.",
            "password": "This password is too common.",
            "83920175": "This password is entirely numeric.",
            "zebedee-1": "The password is too similar to the username."}
    refused = {password: submit(Browser(stack.port), "/accounts/signup/", username="zebedee", password1=password,
                                password2=password) for password in weak}
    for password, reason in weak.items():
        status, url, page = refused[password]
        assert (status, urllib.parse.urlsplit(url).path) == (200, "/accounts/signup/")
        assert reason in errors(page)
    assert Browser(stack.port).sign_up("zebedee", PASSWORD).endswith("/")


def test_a_new_password_from_the_page_closes_the_users_other_sockets_within_a_second(production):
    stack = production(workers=2)
    here, elsewhere = Browser(stack.port), Browser(stack.port)
    here.sign_up("ann", PASSWORD)
    elsewhere.log_in("ann", PASSWORD)
    old_cookie = elsewhere.cookie_header()

    async def main():
        other = await elsewhere.join("kitchen").__aenter__()
        await joined(other)
        started = time.monotonic()
        changed = asyncio.get_running_loop().run_in_executor(None, lambda: submit(
            here, "/accounts/password_change/", old_password=PASSWORD, new_password1="a-new-password-7",
            new_password2="a-new-password-7"))
        await asyncio.wait_for(other.wait_closed(), TIMEOUT)
        closed_after = time.monotonic() - started
        status, url, _ = await changed
        async with join(stack.port, "lobby", additional_headers={"Cookie": old_cookie}) as stale, \
                here.join("lobby") as kept:
            (stale_welcome, _), (kept_welcome, _) = await joined(stale), await joined(kept)
        return (other.close_code, other.close_reason), closed_after, (status, url), stale_welcome, kept_welcome

    closed, closed_after, answer, stale, kept = run(main())
    print("the other socket closed %.2f s after the password change was sent" % closed_after)
    assert closed == (4401, SIGNED_OUT)
    assert closed_after < 1
    assert answer == (200, "http://127.0.0.1:%d/accounts/password_change/done/" % stack.port)
    assert (stale["signed_in"], kept["signed_in"], kept["handle"]) == (False, True, "ann")


def test_a_burst_of_wrong_passwords_is_throttled_across_both_workers_and_then_the_right_one_waits(production):
    stack = production(workers=2)
    Browser(stack.port).sign_up("ann", PASSWORD)

    def guess(number):
        return submit(Browser(stack.port), "/accounts/login/", username="ann", password="guess-%d" % number)[0]

    with concurrent.futures.ThreadPoolExecutor(6) as threads:
        statuses = list(threads.map(guess, range(3 * LIMIT)))
    status, _, page = submit(Browser(stack.port), "/accounts/login/", username="ann", password=PASSWORD)
    checked = failures_counted(stack)
    # Each worker checks one password at a time: at most one guess per other worker past the limit.
    assert LIMIT <= checked <= LIMIT + 1
    assert statuses.count(429) >= 3 * LIMIT - checked
    assert status == 429
    # One client: the username's count and its address's both reached the limit.
    assert re.fullmatch(r"Too many failed logins for this username and from your address: try again in 1[45] min \d+ s\.",
                        errors(page)[0])

    later = "from axes.models import AccessAttempt; from django.db.models import F; from datetime import timedelta; " \
            "AccessAttempt.objects.update(attempt_time=F('attempt_time') - timedelta(minutes=15))"
    subprocess.run(manage("shell", "-c", later), env=stack.env, check=True)  # the cool-off passes
    assert Browser(stack.port).log_in("ann", PASSWORD).endswith("/")
