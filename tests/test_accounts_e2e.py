"""End to end, on SQLite and on PostgreSQL: Django accounts on the socket, with real daphne, two
runworkers and redis-server (docs/accounts.md). A browser's part is played by an HTTP client
that keeps cookies and sends the CSRF token, and a WebSocket client that sends the cookies."""
import asyncio
import http.cookiejar
import json
import re
import subprocess
import time
import urllib.parse
import urllib.request

import redis

from tests.chatclient import TIMEOUT, frames_until, join, joined, messages, next_frame, run
from tests.servers import manage


class Browser:
    """Cookies and CSRF, as a browser keeps them, over urllib."""

    def __init__(self, port):
        self.port = port
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def get(self, path):
        return self.opener.open("http://127.0.0.1:%d%s" % (self.port, path), timeout=TIMEOUT).read().decode()

    def post_form(self, path, **fields):
        """GET the page for its CSRF token, then POST the form as the browser would; the final URL."""
        page = self.get(path)
        fields["csrfmiddlewaretoken"] = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        request = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path),
                                         data=urllib.parse.urlencode(fields).encode(),
                                         headers={"Referer": "http://127.0.0.1:%d%s" % (self.port, path)})
        return self.opener.open(request, timeout=TIMEOUT).geturl()

    def sign_up(self, username, password):
        return self.post_form("/accounts/signup/", username=username, password1=password, password2=password)

    def log_in(self, username, password):
        return self.post_form("/accounts/login/", username=username, password=password)

    def log_out(self):
        page = self.get("/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        request = urllib.request.Request("http://127.0.0.1:%d/accounts/logout/" % self.port,
                                         data=urllib.parse.urlencode({"csrfmiddlewaretoken": token}).encode(),
                                         headers={"Referer": "http://127.0.0.1:%d/" % self.port})
        return self.opener.open(request, timeout=TIMEOUT).geturl()

    def cookie_header(self):
        return "; ".join("%s=%s" % (cookie.name, cookie.value) for cookie in self.cookies)

    def join(self, room, handle=None):
        return join(self.port, room, handle, additional_headers={"Cookie": self.cookie_header()})


def make_staff(stack, username, password):
    script = ("from django.contrib.auth.models import User; "
              "User.objects.create_user(%r, password=%r, is_staff=True)" % (username, password))
    subprocess.run(manage("shell", "-c", script), env=stack.env, check=True)


PASSWORD = "a-long-password-9"
SIGNED_OUT = "signed out: the user logged out, changed the password or was made inactive"


def test_a_signed_in_socket_speaks_as_its_username_and_no_frame_changes_that(production, database_url):
    stack = production(workers=2, database_url=database_url)
    ann = Browser(stack.port)
    assert ann.sign_up("ann", PASSWORD).endswith("/")
    assert "signed in as <strong class=\"me\">ann</strong>" in ann.get("/")

    async def main():
        async with ann.join("lobby", "pretender") as socket, join(stack.port, "lobby", "bob") as bob:
            welcome, _ = await joined(socket)
            await joined(bob)
            await socket.send(json.dumps({"message": "hi"}))
            heard = (await messages(bob, 1))[0]
            await bob.send(json.dumps({"message": "send me your password", "handle": "ann"}))
            refused = await next_frame(bob)
            await bob.send("I am bob")
            said = (await messages(socket, 2))[-1]
            return welcome, heard, refused, said

    welcome, heard, refused, said = run(main())
    assert (welcome["handle"], welcome["signed_in"]) == ("ann", True)
    assert (heard["handle"], heard["signed_in"], heard["sender"]) == ("ann", True, welcome["sender"])
    assert refused["code"] == "handle_not_allowed"
    assert (said["handle"], said["signed_in"], said["message"]) == ("bob", False, "I am bob")
    assert said["sender"] != welcome["sender"]


def test_a_guest_cannot_take_a_registered_name(production, database_url):
    stack = production(workers=2, database_url=database_url)
    Browser(stack.port).sign_up("ann", PASSWORD)

    async def main():
        async with join(stack.port, "lobby", "ANN") as squatter:
            refusal = await next_frame(squatter)
            await squatter.wait_closed()
            return refusal, squatter.close_code, squatter.close_reason

    refusal, code, reason = run(main())
    assert (refusal["code"], code) == ("handle_taken", 4400)
    assert reason == "refused: the error frame before this close says why"


def test_logging_out_closes_the_users_sockets_within_a_second_and_the_old_cookie_is_a_guest(production, database_url):
    stack = production(workers=2, database_url=database_url)
    ann = Browser(stack.port)
    ann.sign_up("ann", PASSWORD)
    old_cookie = ann.cookie_header()

    async def main():
        tabs = [await ann.join("lobby").__aenter__(), await ann.join("kitchen").__aenter__()]
        for tab in tabs:
            await joined(tab)
        started = time.monotonic()
        await asyncio.get_running_loop().run_in_executor(None, ann.log_out)
        for tab in tabs:
            await asyncio.wait_for(tab.wait_closed(), TIMEOUT)
        closed_after = time.monotonic() - started
        async with join(stack.port, "lobby", additional_headers={"Cookie": old_cookie}) as again:
            welcome, _ = await joined(again)
        return [(tab.close_code, tab.close_reason) for tab in tabs], closed_after, welcome

    closes, closed_after, welcome = run(main())
    print("sockets closed %.2f s after the logout request was sent" % closed_after)
    assert closes == [(4401, SIGNED_OUT)] * 2
    assert closed_after < 1
    assert welcome["signed_in"] is False and welcome["handle"].startswith("guest-")


def test_a_deleted_message_disappears_for_every_member_and_every_later_joiner(production, database_url):
    stack = production(workers=2, database_url=database_url)
    make_staff(stack, "mod", PASSWORD)
    mod = Browser(stack.port)
    mod.log_in("mod", PASSWORD)

    async def main():
        async with mod.join("lobby") as moderator, join(stack.port, "lobby", "spammer") as spammer:
            await joined(moderator)
            await joined(spammer)
            for text in ("before", "buy now", "after"):
                await spammer.send(text)
            sent = await messages(moderator, 3)
            spam = sent[1]["seq"]
            await moderator.send(json.dumps({"action": "delete", "seq": spam}))
            told = [await frames_until(ws, lambda got: any(f["type"] == "deleted" for f in got))
                    for ws in (moderator, spammer)]
        return spam, [frames[-1] for frames in told]

    spam, told = run(main())
    assert all((frame["seq"], frame["by"]) == (spam, "mod") for frame in told)

    async def later_joiner():
        async with join(stack.port, "lobby") as ws:
            _, history = await joined(ws)
            return [item["message"] for item in history["messages"]]

    assert run(later_joiner()) == ["before", "after"]  # from Redis
    deadline = time.monotonic() + TIMEOUT
    while stack.stored_seqs("lobby") != [spam - 1, spam + 1]:  # stored off the delivery path
        assert time.monotonic() < deadline, stack.stored_seqs("lobby")
        time.sleep(0.05)
    redis.StrictRedis(port=stack.redis[0].port).flushall()
    assert run(later_joiner()) == ["before", "after"]  # from the database
