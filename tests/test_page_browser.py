"""The chat page at / in a real Chromium, against the real `manage.py runserver`
(and a few times against the production topology: redis-server, daphnes, runworkers;
Python WebSocket clients from tests.chatclient talk alongside the pages there).

Each test waits on what the page shows (Playwright's expect), never on the clock.
People with accounts sign up, log in and log out through the account pages as a
person does; a staff member is made with `manage.py shell`, as an admin would.
test_a_signed_in_user_and_a_guest_make_the_screenshot makes the READMEs' pictures, one per
language; it replaces docs/screenshot.png and docs/screenshot.zh-CN.png only when
UPDATE_SCREENSHOT=1 (the times in them change every run).
"""
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import time
from datetime import datetime
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.conf import settings
from playwright.sync_api import expect

from channels_example.chat.protocol import ProtocolError
from tests.chatclient import join, joined, messages, run
from tests.servers import ROOT, Process, free_port, manage

# Joining means a WebSocket handshake and a consumer run; a restarted server takes longer.
CONNECT_TIMEOUT = 15000
RECONNECT_TIMEOUT = 30000
XSS = "<img src=x onerror=alert(1)>"
# The page's languages, as a browser's locale asks for them.
LANGUAGES = ["en", "zh-CN"]
# Django's language code for each browser locale: the switch's lang attribute.
LANGUAGE_CODES = {"en": "en", "zh-CN": "zh-hans"}
SCREENSHOTS = {"en": os.path.join(ROOT, "docs", "screenshot.png"),
               "zh-CN": os.path.join(ROOT, "docs", "screenshot.zh-CN.png")}
SIGNED_IN = {"en": "%s in %s (signed in)", "zh-CN": "%s 在 %s（已登录）"}
PASSWORD = "a-long-password-9"
OWN, NOT_OWN = re.compile(r"\bown\b"), re.compile(r"^(?!.*\bown\b)")


def open_room(page, port, room, handle, connected=True):
    """Open the room's URL as ``handle``; wait until the page says it is connected."""
    page.goto("http://127.0.0.1:%d/?%s" % (port, urlencode({"room": room, "handle": handle})))
    if connected:
        expect(page.locator("#status")).to_have_attribute("data-state", "connected", timeout=CONNECT_TIMEOUT)
    return page


def say(page, text):
    """Type ``text`` and press Enter, once the message before it is no longer being sent (as a person
    types the next message once the box has emptied)."""
    expect(page.locator("#send")).not_to_have_attribute("data-state", "sending")
    page.fill("#message", text)
    page.press("#message", "Enter")


def texts(page):
    return page.locator(".message .text")


def record_dialogs(page):
    dialogs = []

    def dismiss(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    return dialogs


def create_user(server, username, staff=False):
    """A user made as an admin makes one, with `manage.py shell` on the server's database."""
    script = ("from django.contrib.auth.models import User; "
              "User.objects.create_user(%r, password=%r, is_staff=%r)" % (username, PASSWORD, staff))
    subprocess.run(manage("shell", "-c", script), env=server.env, check=True)


def sign_up(page, port, username, room, language="en"):
    """Sign up through /accounts/signup/, then open the room; wait until the page, in ``language``, has
    joined it signed in."""
    page.goto("http://127.0.0.1:%d/accounts/signup/" % port)
    page.fill("#id_username", username)
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("main form button")
    expect(page.locator("#account")).to_have_attribute("data-signed-in", "1")
    page.goto("http://127.0.0.1:%d/?%s" % (port, urlencode({"room": room})))
    expect(page.locator("#status")).to_have_text(SIGNED_IN[language] % (username, room), timeout=CONNECT_TIMEOUT)
    return page


def log_in(page, username, room):
    """On the login page (the page's Log in link leads there): log in; wait until the page is back in the room."""
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("main form button")
    expect(page.locator("#status")).to_have_text("%s in %s (signed in)" % (username, room), timeout=CONNECT_TIMEOUT)
    return page


def test_two_people_in_one_room_chat_both_ways(runserver, new_page):
    chat_both_ways(runserver.port, new_page)


def test_two_people_chat_both_ways_through_daphne_and_workers(production, new_page):
    chat_both_ways(production(workers=2).port, new_page)


def chat_both_ways(port, new_page):
    ann = open_room(new_page(), port, "lobby", "ann")
    bob = open_room(new_page(), port, "lobby", "bob")

    say(ann, "hi bob")
    expect(texts(bob)).to_have_text(["hi bob"])
    bob.fill("#message", "hi ann")
    bob.click("#send button")

    expect(texts(ann)).to_have_text(["hi bob", "hi ann"])
    expect(texts(bob)).to_have_text(["hi bob", "hi ann"])
    expect(ann.locator(".message .handle")).to_have_text(["ann", "bob"])
    # Each sees its own message marked, and the other's not.
    expect(ann.locator(".message")).to_have_class([re.compile(r"\bown\b"), re.compile(r"^message$")])
    expect(bob.locator(".message")).to_have_class([re.compile(r"^message$"), re.compile(r"\bown\b")])
    # Enter and the Send button both send, clear the box and leave the focus in it.
    for page in (ann, bob):
        expect(page.locator("#message")).to_have_value("")
        expect(page.locator("#message")).to_be_focused()
    # The time shown is the server's ts for the message.
    sent = ann.locator(".message time").first
    expect(sent).to_have_text(re.compile(r"^\d\d:\d\d"))
    stamp = datetime.fromisoformat(sent.get_attribute("datetime").replace("Z", "+00:00")).timestamp()
    assert abs(stamp - time.time()) < 60


def test_under_daphne_and_workers_the_admin_and_the_chat_page_are_styled(production, page):
    port = production(workers=1).port
    stylesheets = []
    page.on("response", lambda response: stylesheets.append((urlsplit(response.url).path, response.status))
            if response.request.resource_type == "stylesheet" else None)

    page.goto("http://127.0.0.1:%d/admin/login/" % port)
    # Django admin's base.css colours its header: the stylesheet was served and applied.
    expect(page.locator("#header")).to_have_css("background-color", "rgb(65, 118, 144)")
    page.goto("http://127.0.0.1:%d/" % port)
    expect(page.locator(".top")).to_have_css("display", "flex")  # chat.css lays the header out

    assert ("/static/admin/css/base.css", 200) in stylesheets, stylesheets
    assert ("/static/chat.css", 200) in stylesheets, stylesheets


def test_a_page_in_another_room_sees_nothing_of_it(runserver, new_page):
    ann = open_room(new_page(), runserver.port, "general", "ann")
    bob = open_room(new_page(), runserver.port, "general", "bob")
    carol = open_room(new_page(), runserver.port, "elsewhere", "carol")

    say(ann, "from ann")
    expect(texts(bob)).to_have_text(["from ann"])
    say(bob, "from bob")
    expect(texts(ann)).to_have_text(["from ann", "from bob"])
    say(carol, "only carol")

    # Carol's own message arrives after everything sent before it, and nothing else does.
    expect(texts(carol)).to_have_text(["only carol"])
    say(ann, "still just us")
    expect(texts(bob)).to_have_text(["from ann", "from bob", "still just us"])
    expect(texts(carol)).to_have_text(["only carol"])


def test_chinese_room_name_and_text_through_the_join_form_and_the_room_link(runserver, new_page):
    xiaoming = new_page()
    xiaoming.goto("http://127.0.0.1:%d/" % runserver.port)
    xiaoming.fill("#handle", "小明")
    xiaoming.fill("#room", "聊天室")
    xiaoming.press("#room", "Enter")
    expect(xiaoming.locator("#status")).to_have_attribute("data-state", "connected", timeout=CONNECT_TIMEOUT)
    expect(xiaoming.locator("#room-name")).to_have_text("聊天室")
    expect(xiaoming).to_have_url(re.compile(re.escape("?" + urlencode({"room": "聊天室", "handle": "小明"})) + "$"))
    link = xiaoming.get_attribute("#share", "href")
    assert link == "http://127.0.0.1:%d/?room=%%E8%%81%%8A%%E5%%A4%%A9%%E5%%AE%%A4" % runserver.port

    # The room's link opens the join form in the room, asking the guest for a name first.
    guest = new_page()
    guest.goto(link)
    expect(guest.locator("#room")).to_have_value("聊天室")
    expect(guest.locator("#handle")).to_be_focused()
    guest.keyboard.type("小红")
    guest.keyboard.press("Enter")
    expect(guest.locator("#status")).to_have_text("小红 in 聊天室 (guest)", timeout=CONNECT_TIMEOUT)
    say(xiaoming, "你好，世界")
    expect(texts(guest)).to_have_text(["你好，世界"])  # two senders' messages are ordered by the room, not by who typed first
    say(guest, "你好，小明")

    for page in (xiaoming, guest):
        expect(texts(page)).to_have_text(["你好，世界", "你好，小明"])
        expect(page.locator(".message .handle").first).to_have_text("小明")


def test_markup_in_a_message_handle_or_room_shows_as_text(runserver, new_page):
    room, handle = "<b>room", "<i>ann</i>"  # a room name cannot hold a slash
    page = new_page()
    dialogs = record_dialogs(page)
    open_room(page, runserver.port, room, handle)

    say(page, XSS)

    expect(texts(page)).to_have_text([XSS])
    expect(page.locator(".message .handle")).to_have_text([handle])
    expect(page.locator("#room-name")).to_have_text(room)
    expect(page.locator("body img, body b, body i")).to_have_count(0)
    assert dialogs == []


def paste(page, text):
    """Paste ``text`` into the message box, as Ctrl+V does (a paste event with the clipboard's text)."""
    page.focus("#message")
    page.eval_on_selector("#message", """(box, text) => {
        const clipboard = new DataTransfer();
        clipboard.setData("text/plain", text);
        const pasted = new ClipboardEvent("paste", {clipboardData: clipboard, cancelable: true});
        if (box.dispatchEvent(pasted)) document.execCommand("insertText", false, text);
    }""", text)


def test_a_refused_message_stays_in_the_box_with_the_reason_beside_it_and_the_chat_goes_on(runserver, new_page):
    ann = open_room(new_page(), runserver.port, "lobby", "ann")
    bob = open_room(new_page(), runserver.port, "lobby", "bob")
    dialogs = record_dialogs(ann)

    say(ann, "   ")
    expect(ann.locator("#send-error")).to_have_text("The message is empty: type something to send.")
    expect(ann.locator("#message")).to_have_value("   ")
    say(ann, "still here")

    expect(texts(bob)).to_have_text(["still here"])
    expect(texts(ann)).to_have_text(["still here"])
    expect(ann.locator("#send-error")).to_be_hidden()
    expect(ann.locator("#message")).to_have_value("")
    expect(ann.locator("#status")).to_have_attribute("data-state", "connected")
    assert dialogs == []


@pytest.mark.parametrize("size", [2001, 200 * 1024, 300 * 1024], ids=["2001-characters", "200-KB", "300-KB"])
def test_a_paste_too_long_to_send_is_kept_whole_and_refused_by_the_page_before_it_is_sent(runserver, page, size):
    sent = []
    page.on("websocket", lambda socket: socket.on("framesent", lambda frame: sent.append(frame)))
    open_room(page, runserver.port, "lobby", "ann")
    text = "长" * size

    paste(page, text)
    expect(page.locator("#send-error")).to_have_text(
        "%s characters: at most 2,000. Shorten it, or send it in parts." % format(size, ","))
    page.press("#message", "Enter")

    expect(page.locator("#message")).to_have_value(text)  # whole: the browser's maxlength would cut it
    expect(page.locator("#send-error")).to_be_visible()
    say(page, "a short one")  # the socket stayed open: nothing too large was sent
    expect(texts(page)).to_have_text(["a short one"])
    assert sent == ['{"message":"a short one"}']


ROOM_REFUSED = ("“%s” cannot be a room: a room name has 1 to 100 characters, no “/”, no control characters and no "
                "spaces at either end. Choose another. The page will not retry by itself.")


@pytest.mark.parametrize("room, handle, reason", [
    ("a/b", "ann", ROOM_REFUSED % "a/b"),
    ("r" * 101, "ann", ROOM_REFUSED % ("r" * 101)),
    ("lobby", "h" * 33, "“%s” cannot be a name: 1 to 32 characters, at least one of them visible, and no control "
                        "characters. Choose another. The page will not retry by itself." % ("h" * 33)),
], ids=["room-with-a-slash", "room-of-101-characters", "handle-of-33-characters"])
def test_refused_connection_shows_the_reason_and_is_not_retried(runserver, page, room, handle, reason):
    sockets = []
    page.on("websocket", lambda socket: sockets.append(socket))
    page.clock.install()

    open_room(page, runserver.port, room, handle, connected=False)
    expect(page.locator("#status")).to_have_attribute("data-state", "refused", timeout=CONNECT_TIMEOUT)
    expect(page.locator("#status")).to_have_text("refused")
    expect(page.locator("#join-error")).to_have_text(reason)
    # The refused room is nobody's current room: no header, no link, not in the page's address.
    expect(page.locator("#room-name")).to_have_text("")
    expect(page.locator("#share")).to_be_hidden()
    expect(page).to_have_url("http://127.0.0.1:%d/" % runserver.port)
    # Let a minute pass on the page's clock: longer than any backoff would wait.
    page.clock.run_for(60000)

    expect(page.locator("#status")).to_have_attribute("data-state", "refused")
    assert len(sockets) == 1, [socket.url for socket in sockets]


# A refusal as ws_connect sends it: one reply of accept, the error frame and close 4400.
REFUSAL_DETAIL = "someone else in lobby is called ann: choose another name"
REFUSAL = ProtocolError("handle_in_use", REFUSAL_DETAIL).refusal()
ARRIVES = {
    "error frame": lambda socket: socket.send(REFUSAL["text"]),
    "close 4400": lambda socket: socket.close(code=REFUSAL["close"]),
    # daphne 1.4 (autobahn) cuts a connection whose browser has not answered its close within
    # 1 s: on a busy machine the page then sees 1006, not the 4400 the close frame carried.
    "cut connection": lambda socket: socket.close(code=1006),
}
# What the page says beside the join form: the reason the error frame gave, or, when the close came
# first (a browser drops what follows a close), that the server refused; either way, once.
REFUSED_WITH_ITS_REASON = ("Someone else in lobby is called “ann” now: choose another name. "
                           "The page will not retry by itself.")
REFUSED = "The server refused this room or name: choose another. The page will not retry by itself."


@pytest.mark.parametrize("first, then, said", [
    ("error frame", "close 4400", REFUSED_WITH_ITS_REASON),
    ("error frame", "cut connection", REFUSED_WITH_ITS_REASON),
    # Nothing after a close reaches a page: a browser drops it, as Playwright's stand-in socket does.
    ("close 4400", "error frame", REFUSED),
], ids=["error-frame-then-close-4400", "error-frame-then-a-cut-connection", "close-4400-then-error-frame"])
def test_a_refusal_is_shown_once_and_not_retried_whichever_of_its_frame_and_close_comes_first(
        runserver, page, first, then, said):
    sockets = []  # the page's sockets: Playwright answers them for the test, in the server's place

    def answer(socket):
        sockets.append(socket)
        ARRIVES[first](socket)

    page.route_web_socket(re.compile(r"/lobby/"), answer)
    page.clock.install()
    open_room(page, runserver.port, "lobby", "ann", connected=False)
    expect(page.locator("#status")).to_have_attribute("data-state", "refused")  # from what came first
    ARRIVES[then](sockets[0])
    page.clock.run_for(60000)  # longer than any backoff would wait

    expect(page.locator("#join-error")).to_have_text(said)
    expect(page.locator("#status")).to_have_attribute("data-state", "refused")
    expect(page.locator(".note")).to_have_count(0)  # no "connection lost, reconnecting" from the second
    assert len(sockets) == 1, [socket.url for socket in sockets]


@pytest.fixture
def restartable_server(tmp_path, sqlite_env):
    """A runserver, as the runserver fixture starts it, that can be stopped and started again on its port."""
    port = free_port()

    class Restartable:
        def __init__(self):
            self.port, self.server, self.env = port, None, sqlite_env

        def start(self):
            self.server = Process(
                "runserver", manage("runserver", "127.0.0.1:%d" % port, "--noreload"),
                env=sqlite_env, port=port, log_path=tmp_path / "runserver.log",
            ).start()

        def stop(self):
            self.server.stop()

    restartable = Restartable()
    restartable.start()
    yield restartable
    restartable.stop()


def stored_count(env, room):
    """How many of ``room``'s messages a runserver's SQLite database holds."""
    with contextlib.closing(sqlite3.connect(env["SQLITE_PATH"], timeout=20)) as database:
        return database.execute("SELECT count(*) FROM channels_example_message WHERE room = ?", (room,)).fetchone()[0]


def wait_until_stored(env, room, count, timeout=30):
    """Until the database holds ``count`` messages of ``room``: they are stored off the delivery path,
    and nothing the page shows says when."""
    deadline = time.monotonic() + timeout
    while stored_count(env, room) < count:
        assert time.monotonic() < deadline, "%d messages of %r not stored within %d s" % (count, room, timeout)
        time.sleep(0.05)


def test_page_reconnects_by_itself_after_the_server_restarts(restartable_server, new_page):
    ann = open_room(new_page(), restartable_server.port, "lobby", "ann")
    bob = open_room(new_page(), restartable_server.port, "lobby", "bob")
    say(ann, "before")
    expect(texts(bob)).to_have_text(["before"])
    wait_until_stored(restartable_server.env, "lobby", 1)  # runserver numbers in memory, then from the database

    restartable_server.stop()
    for page in (ann, bob):
        expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting")
    restartable_server.start()

    for page in (ann, bob):
        expect(page.locator("#status")).to_have_attribute("data-state", "connected", timeout=RECONNECT_TIMEOUT)
        expect(page.locator(".note.resumed")).to_have_text(["reconnected — nothing missed"])
    say(bob, "after")
    expect(texts(ann)).to_have_text(["before", "after"])
    expect(ann.locator(".note").filter(has_text="reconnected")).to_have_count(1)


def test_a_page_whose_room_the_server_lost_shows_the_room_as_the_server_has_it_now(restartable_server, new_page):
    ann = open_room(new_page(), restartable_server.port, "lost", "ann")
    for text in ("one", "two"):
        say(ann, text)
    expect(texts(ann)).to_have_text(["one", "two"])

    # The server comes back without the room: its memory went with the process, its rows are deleted.
    restartable_server.stop()
    expect(ann.locator("#status")).to_have_attribute("data-state", "reconnecting")
    with contextlib.closing(sqlite3.connect(restartable_server.env["SQLITE_PATH"], timeout=20)) as database:
        with database:
            database.execute("DELETE FROM channels_example_message WHERE room = 'lost'")
    restartable_server.start()

    # The page asked for what came after 2; the room has no 2: the page shows the room as it is now.
    expect(ann.locator("#messages > li")).to_have_text(
        ["reconnected — the server no longer has the messages shown before; this is the room as it is now"],
        timeout=RECONNECT_TIMEOUT)
    say(ann, "three")  # numbered 1 again: shown, not taken for the "one" the page showed before
    expect(texts(ann)).to_have_text(["three"])
    expect(ann.locator(".message")).to_have_attribute("data-seq", "1")


def talk(port, room, handle, lines, chunk=200):
    """A Python WebSocket client joins ``room`` as ``handle``, says ``lines`` (``chunk`` at a time,
    then the echoes) and leaves; the seqs its lines were given."""
    async def main():
        seqs = []
        async with join(port, room, handle) as talker:
            await joined(talker)
            for start in range(0, len(lines), chunk):
                for line in lines[start:start + chunk]:
                    await talker.send(line)
                seqs += [frame["seq"] for frame in await messages(talker, len(lines[start:start + chunk]), 120)]
        return seqs

    return run(main())


def shown(page):
    """``[seq, text]`` of every message the page shows, top to bottom."""
    return page.eval_on_selector_all(
        ".message", "items => items.map(item => [Number(item.dataset.seq), item.querySelector('.text').textContent])")


@pytest.mark.parametrize("missed, mark", [
    (12, "reconnected — 12 messages you missed"),
    (1005, "reconnected — more than 1,000 messages were missed; the oldest are not shown"),
], ids=["12-missed", "more-than-the-resume-limit"])
def test_after_its_daphne_restarts_a_page_shows_every_message_once_in_order_after_a_mark(
        production, new_page, missed, mark):
    stack = production(workers=2, daphnes=2)
    theirs, talkers = stack.daphnes  # the pages on one daphne, the Python talkers on the other
    ann = open_room(new_page(), theirs.port, "resume", "ann")
    bob = open_room(new_page(), theirs.port, "resume", "bob")
    say(ann, "ann before")
    expect(texts(bob)).to_have_text(["ann before"])
    before = talk(talkers.port, "resume", "early", ["before %d" % n for n in range(3)])
    for page in (ann, bob):
        expect(texts(page)).to_have_count(4)

    theirs.stop()
    for page in (ann, bob):
        expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting")
    during = talk(talkers.port, "resume", "meanwhile", ["during %d" % n for n in range(missed)])
    theirs.start()

    for page in (ann, bob):
        expect(page.locator(".note.resumed")).to_have_text([mark], timeout=RECONNECT_TIMEOUT)
    after = talk(talkers.port, "resume", "late", ["after %d" % n for n in range(3)])
    say(bob, "bob after")

    kept = during[-settings.RESUME_LIMIT:]
    expected = ([[1, "ann before"]] + [[seq, "before %d" % n] for n, seq in enumerate(before)]
                + [[seq, "during %d" % (missed - len(kept) + n)] for n, seq in enumerate(kept)]
                + [[seq, "after %d" % n] for n, seq in enumerate(after)] + [[after[-1] + 1, "bob after"]])
    assert [seq for seq, _ in expected] == list(range(1, 5)) + kept + list(range(during[-1] + 1, during[-1] + 5))
    for page in (ann, bob):
        expect(page.locator(".message").last).to_have_attribute("data-seq", str(after[-1] + 1))
        assert shown(page) == expected
        # The mark stands where the page came back: right above the first message it missed.
        expect(page.locator(".note.resumed + .message")).to_have_attribute("data-seq", str(kept[0]))


def test_the_view_follows_new_messages(runserver, new_page):
    ann = open_room(new_page(viewport={"width": 800, "height": 500}), runserver.port, "lobby", "ann")
    bob = open_room(new_page(viewport={"width": 800, "height": 500}), runserver.port, "lobby", "bob")

    for number in range(30):
        say(ann, "message %d" % number)

    for page in (ann, bob):
        expect(texts(page).last).to_have_text("message 29")
        expect(page.locator(".message").last).to_be_in_viewport()
        expect(page.locator(".message").first).not_to_be_in_viewport()


def test_unknown_and_malformed_frames_are_ignored(runserver, page):
    routed, errors = [], []

    def pass_through(ws):
        routed.append(ws)
        ws.connect_to_server()

    page.on("pageerror", lambda error: errors.append(error))
    page.route_web_socket(re.compile(r"/lobby/"), pass_through)
    open_room(page, runserver.port, "lobby", "ann")

    for frame in ({"type": "typing", "handle": "bob"}, {"type": "presence", "handles": ["ann"]},
                  {"type": "history", "messages": [None, 1]}, {"type": "history"}, [1, 2], None):
        routed[0].send(json.dumps(frame))
    routed[0].send("not json")
    say(page, "after the unknown frames")

    expect(texts(page)).to_have_text(["after the unknown frames"])
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    assert errors == []


def test_a_joiner_sees_the_rooms_history_then_live_messages(runserver, new_page):
    ann = open_room(new_page(), runserver.port, "lobby", "ann")
    for text in ("one", "two", "three"):
        say(ann, text)
    expect(texts(ann)).to_have_text(["one", "two", "three"])

    bob = open_room(new_page(), runserver.port, "lobby", "bob")
    expect(texts(bob)).to_have_text(["one", "two", "three"])
    say(ann, "four")

    expect(texts(bob)).to_have_text(["one", "two", "three", "four"])
    expect(bob.locator(".message.earlier")).to_have_count(3)
    expect(bob.locator(".message .handle")).to_have_text(["ann"] * 4)


def test_history_and_presence_through_daphne_and_workers(production, new_page):
    port = production(workers=2).port
    ann = open_room(new_page(), port, "lobby", "ann")
    say(ann, "before bob")
    expect(texts(ann)).to_have_text(["before bob"])

    bob = open_room(new_page(), port, "lobby", "bob")

    expect(texts(bob)).to_have_text(["before bob"])
    expect(bob.locator("#members li")).to_have_text(["ann", "bob"])
    expect(ann.locator("#member-count")).to_have_text("2")


def test_presence_shows_who_is_here_and_who_comes_and_goes(runserver, new_page):
    ann = open_room(new_page(), runserver.port, "lobby", "ann")
    expect(ann.locator("#member-count")).to_have_text("1")
    expect(ann.locator("#members li")).to_have_text(["ann"])

    bob_page = new_page()
    open_room(bob_page, runserver.port, "lobby", "bob")
    expect(bob_page.locator("#members li")).to_have_text(["ann", "bob"])
    expect(ann.locator("#members li")).to_have_text(["ann", "bob"])
    expect(ann.locator("#member-count")).to_have_text("2")
    expect(ann.locator(".note.presence")).to_have_text(["bob joined"])

    bob_page.close()

    expect(ann.locator("#member-count")).to_have_text("1")
    expect(ann.locator("#members li")).to_have_text(["ann"])
    expect(ann.locator(".note.presence")).to_have_text(["bob joined", "bob left"])


def test_a_guest_opening_a_room_link_picks_a_name_first_and_the_room_sees_one_join(runserver, new_page):
    watcher = open_room(new_page(), runserver.port, "lobby", "watcher")
    carol = new_page()
    sockets = []
    carol.on("websocket", lambda socket: sockets.append(socket.url))
    carol.goto("http://127.0.0.1:%d/?room=lobby" % runserver.port)

    expect(carol.locator("#handle")).to_be_focused()
    expect(carol.locator("#room")).to_have_value("lobby")
    expect(carol.locator(".note.invite")).to_have_text(
        "Choose a name to join lobby, then Join; or join as a guest, and the room will give you one.")
    # Join wants a name: with none, the page asks for it and stays out.
    carol.get_by_role("button", name="Join", exact=True).click()
    expect(carol.locator("#handle:invalid")).to_be_focused()
    expect(carol.locator("#status")).to_have_attribute("data-state", "idle")
    carol.keyboard.type("carol")
    carol.keyboard.press("Enter")

    expect(carol.locator("#status")).to_have_text("carol in lobby (guest)", timeout=CONNECT_TIMEOUT)
    say(carol, "hello")
    expect(texts(watcher)).to_have_text(["hello"])
    expect(watcher.locator(".note.presence")).to_have_text(["carol joined"])
    assert sockets == ["ws://127.0.0.1:%d/lobby/?handle=carol" % runserver.port]
    # The name is hers from now on: another room's link joins at once under it.
    kitchen = carol.context.new_page()
    kitchen.goto("http://127.0.0.1:%d/?room=kitchen" % runserver.port)
    expect(kitchen.locator("#status")).to_have_text("carol in kitchen (guest)", timeout=CONNECT_TIMEOUT)


def test_join_as_a_guest_lets_the_server_give_the_name_and_the_room_sees_one_join(runserver, new_page):
    watcher = open_room(new_page(), runserver.port, "lobby", "watcher")
    page = new_page()
    page.goto("http://127.0.0.1:%d/?room=lobby" % runserver.port)

    page.get_by_role("button", name="Join as a guest").click()

    expect(page.locator("#status")).to_have_text(re.compile(r"^guest-[0-9a-f]{6} in lobby \(guest\)$"),
                                                 timeout=CONNECT_TIMEOUT)
    handle = page.locator("#status .name").first.text_content()
    say(page, "who am I?")
    expect(page.locator(".message.own .handle")).to_have_text([handle])
    expect(page.locator(".note").first).to_have_text("you are %s in lobby" % handle)
    expect(page.locator("#members li")).to_have_text([handle, "watcher"])
    expect(texts(watcher)).to_have_text(["who am I?"])
    expect(watcher.locator(".note.presence")).to_have_text(["%s joined" % handle])
    # The name the server gave is not one the person chose: not in the box, the URL or the next visit.
    expect(page.locator("#handle")).to_have_value("")
    expect(page).to_have_url(re.compile(re.escape("/?room=lobby") + "$"))
    page.reload()
    expect(page.locator("#handle")).to_be_focused()
    expect(page.locator("#status")).to_have_attribute("data-state", "idle")


def test_a_name_typed_while_the_welcome_arrives_is_sent_as_typed(runserver, new_page):
    watcher = open_room(new_page(), runserver.port, "lobby", "watcher")
    page = new_page()
    urls, held = [], {"frames": [], "holding": True}

    def hold_frames_until_released(ws):
        urls.append(ws.url)
        server = ws.connect_to_server()

        def to_page(message):
            if held["holding"]:
                held["frames"].append((ws, message))
            else:
                ws.send(message)

        server.on_message(to_page)

    def release():
        while held["frames"]:  # sending lets Playwright deliver more: they join the queue
            ws, message = held["frames"].pop(0)
            ws.send(message)
        held["holding"] = False

    page.route_web_socket(re.compile(r"/lobby/"), hold_frames_until_released)
    page.goto("http://127.0.0.1:%d/?room=lobby" % runserver.port)
    page.get_by_role("button", name="Join as a guest").click()

    # The guest starts typing a name; the server's welcome, with a generated one, lands mid-word.
    page.click("#handle")
    page.keyboard.type("car")
    release()
    expect(page.locator("#status")).to_have_text(re.compile(r"^guest-[0-9a-f]{6} in lobby \(guest\)$"),
                                                 timeout=CONNECT_TIMEOUT)
    page.keyboard.type("ol")
    expect(page.locator("#handle")).to_have_value("carol")
    page.keyboard.press("Enter")

    expect(page.locator("#status")).to_have_text("carol in lobby (guest)", timeout=CONNECT_TIMEOUT)
    assert [parse_qs(urlsplit(url).query) for url in urls] == [{}, {"handle": ["carol"]}]
    expect(watcher.locator("#members .name")).to_have_text(["carol", "watcher"])
    # The generated name's socket leaves as carol's joins: the room may hear either first.
    expect(watcher.locator(".note.presence").filter(has_text=re.compile(r"^carol joined$"))).to_have_count(1)


def test_a_guest_who_logs_in_from_a_room_link_joins_it_at_once_under_the_account(runserver, new_page):
    create_user(runserver, "ann")
    watcher = open_room(new_page(), runserver.port, "lobby", "watcher")
    ann = new_page()
    ann.goto("http://127.0.0.1:%d/?room=lobby" % runserver.port)
    expect(ann.locator("#handle")).to_be_focused()  # a guest: asked for a name

    ann.click("#account >> text=Log in")
    log_in(ann, "ann", "lobby")  # back on the room's link, signed in: no Join to press

    expect(ann.get_by_role("button", name="Join as a guest")).to_be_hidden()
    say(ann, "hello from an account")
    expect(texts(watcher)).to_have_text(["hello from an account"])
    expect(watcher.locator(".note.presence")).to_have_text(["ann joined"])


def test_page_fits_a_phone_screen(runserver, new_page):
    page = open_room(new_page(viewport={"width": 375, "height": 667}), runserver.port, "聊天室", "小明")

    say(page, "w" * 300)
    say(page, "a short one")

    expect(texts(page)).to_have_count(2)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    for selector in ("#status", "#room", "#handle", "#message", "#send button", ".message >> nth=0"):
        box = page.locator(selector).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375, selector
        expect(page.locator(selector)).to_be_in_viewport()


def test_seed_test_link_shows_hello_world_in_the_page(runserver, page):
    dialogs = record_dialogs(page)
    page.goto("http://127.0.0.1:%d/" % runserver.port)

    page.click("#seed-test")

    expect(page.locator("#seed-output")).to_have_text("hello world")
    assert dialogs == []


def test_the_note_echo_path_is_not_joined_as_a_room_and_the_page_says_why(runserver, page):
    page.goto("http://127.0.0.1:%d/?%s" % (runserver.port, urlencode({"room": "channels_example", "handle": "ann"})))

    expect(page.locator("#join-error")).to_have_text(
        "channels_example is the study note's echo (its test page, /seed/), not a room: pick another room")
    expect(page.locator("#status")).to_have_attribute("data-state", "idle")
    page.fill("#room", "lobby")
    page.get_by_role("button", name="Join", exact=True).click()
    expect(page.locator("#status")).to_have_text("ann in lobby (guest)", timeout=CONNECT_TIMEOUT)


# The READMEs' conversation, in each language: a signed-in user and a guest in one room.
CONVERSATIONS = {
    "en": ("tea-room", "ann", "bob", [
        ("ann", "Hi Bob! Does the new chat page work for you?"),
        ("bob", "It does, and it follows the conversation as we type."),
        ("ann", "I made an account, so my name has the tick and nobody else can use it."),
        ("bob", "I'm still a guest. Tea at four?"),
        ("ann", "See you there."),
    ]),
    "zh-CN": ("茶室", "小红", "小明", [
        ("小红", "小明，新的聊天页面你那边好用吗？"),
        ("小明", "好用，我们打字的时候，它一直跟着对话。"),
        ("小红", "我注册了账号，所以我的名字旁边有个勾，别人用不了这个名字。"),
        ("小明", "我还是访客。四点喝茶？"),
        ("小红", "到时见。"),
    ]),
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_signed_in_user_and_a_guest_make_the_screenshot(runserver, new_page, tmp_path, language):
    room, member, guest, conversation = CONVERSATIONS[language]
    options = {"viewport": {"width": 760, "height": 600}, "color_scheme": "light",
               "locale": "en-GB" if language == "en" else language}
    pages = {guest: open_room(new_page(**options), runserver.port, room, guest)}
    pages[member] = sign_up(new_page(**options), runserver.port, member, room, language)
    for number, (person, text) in enumerate(conversation, 1):
        say(pages[person], text)
        expect(texts(pages[member])).to_have_count(number)

    expect(texts(pages[guest])).to_have_count(len(conversation))
    expect(pages[member].locator(".message.own .account-mark")).to_have_count(3)
    expect(pages[member].locator(".languages [aria-current]")).to_have_attribute("lang", LANGUAGE_CODES[language])
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        path = SCREENSHOTS[language]
        if language != "en":
            fonts = subprocess.run(["fc-list", ":lang=zh"], stdout=subprocess.PIPE, universal_newlines=True).stdout
            assert fonts, "a Chinese picture needs a Chinese font: apt-get install fonts-noto-cjk"
    else:
        path = str(tmp_path / "screenshot.png")
    pages[member].screenshot(path=path)
    with open(path, "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("language, current, other", [("en", "English", "简体中文"), ("zh-CN", "简体中文", "English")])
def test_the_language_switch_marks_the_pages_language_apart_and_switches_to_the_other(
        runserver, new_page, language, current, other):
    page = new_page(locale=language)
    page.goto("http://127.0.0.1:%d/" % runserver.port)
    switch = page.locator(".languages button")

    expect(switch).to_have_text(["English", "简体中文"])  # each language named in itself
    expect(page.locator(".languages [aria-current]")).to_have_text(current)
    # The page's language is filled in, the other is not: they read as two choices, one made.
    backgrounds = switch.evaluate_all("buttons => buttons.map(button => getComputedStyle(button).backgroundColor)")
    assert backgrounds[0] != backgrounds[1], backgrounds
    assert switch.evaluate_all("buttons => buttons[0].getBoundingClientRect().right"
                               " <= buttons[1].getBoundingClientRect().left")

    page.get_by_role("button", name=other).click()
    expect(page.locator(".languages [aria-current]")).to_have_text(other)


def test_handles_that_are_names_of_object_properties_come_and_go_like_any_other(runserver, new_page):
    watcher = open_room(new_page(), runserver.port, "props", "watcher")
    names = ["constructor", "__proto__", "toString", "hasOwnProperty"]
    pages = [open_room(new_page(), runserver.port, "props", name) for name in names]
    expect(watcher.locator("#members li")).to_have_text(sorted(["watcher"] + names))
    expect(watcher.locator("#member-count")).to_have_text(str(len(names) + 1))
    for page in pages:
        page.close()
    # Every one of them leaves: none stays behind as a ghost.
    expect(watcher.locator("#members li")).to_have_text(["watcher"])
    expect(watcher.locator("#member-count")).to_have_text("1")


def test_a_handle_or_message_with_bidi_controls_cannot_reorder_the_page(runserver, new_page):
    ann = open_room(new_page(), runserver.port, "bidi", "ann")
    bob = open_room(new_page(), runserver.port, "bidi", "bob")
    say(bob, "\u202eevil")
    expect(texts(ann)).to_have_text(["\u202eevil"])
    for selector in (".message .text", ".message .handle", "#members li"):
        assert ann.locator(selector).first.evaluate("node => getComputedStyle(node).unicodeBidi") == "isolate"


def test_a_signed_in_user_is_marked_beside_a_guest_who_cannot_take_the_name(runserver, new_page):
    bob = open_room(new_page(), runserver.port, "lobby", "bob")
    ann = sign_up(new_page(), runserver.port, "ann", "lobby")

    say(ann, "hello, I have an account")
    expect(texts(bob)).to_have_text(["hello, I have an account"])
    say(bob, "and I am a guest")

    for page in (ann, bob):
        expect(texts(page)).to_have_text(["hello, I have an account", "and I am a guest"])
        # The server's signed_in marks ann's message and not bob's, in both pages.
        expect(page.locator(".message .account-mark")).to_have_count(1)
        expect(page.locator(".message").first.locator(".account-mark")).to_have_count(1)
        expect(page.locator(".mod")).to_have_count(0)  # neither is staff
    expect(ann.locator(".message")).to_have_class([OWN, NOT_OWN])
    expect(bob.locator(".message")).to_have_class([NOT_OWN, OWN])
    expect(bob.locator("#members .member:has(.account-mark) .name")).to_have_text(["ann"])
    # Someone joining now sees the mark too: the welcome says who of those present is signed in.
    carol = open_room(new_page(), runserver.port, "lobby", "carol")
    expect(carol.locator("#members .member:has(.account-mark) .name")).to_have_text(["ann"])
    expect(bob.locator("#status")).to_have_text("bob in lobby (guest)")
    # The server decides a signed-in person's name: the join form shows it, not to be edited.
    expect(ann.locator("#handle")).to_have_value("ann")
    expect(ann.locator("#handle")).not_to_be_editable()
    expect(ann).to_have_url(re.compile(re.escape("/?room=lobby") + "$"))

    squatter = open_room(new_page(), runserver.port, "lobby", "ann", connected=False)
    expect(squatter.locator("#status")).to_have_attribute("data-state", "refused", timeout=CONNECT_TIMEOUT)
    expect(squatter.locator("#join-error")).to_have_text(
        "“ann” is an account's name: log in to use it, or choose another name. The page will not retry by itself.")


def test_a_message_is_ones_own_by_who_sent_it_not_by_its_name(runserver, new_page):
    watcher = open_room(new_page(), runserver.port, "lobby", "watcher")
    carol = open_room(new_page(), runserver.port, "lobby", "carol")
    say(carol, "from the first carol")
    expect(texts(watcher)).to_have_text(["from the first carol"])

    # Another tab of the same browser is the same person: the message is still hers.
    carol_again = open_room(carol.context.new_page(), runserver.port, "lobby", "carol")
    expect(carol_again.locator(".message")).to_have_class([OWN])
    carol.close()
    carol_again.close()
    expect(watcher.locator("#members .name")).to_have_text(["watcher"])

    # Someone else who takes the name after she left is not her.
    stranger = open_room(new_page(), runserver.port, "lobby", "carol")
    say(stranger, "a different carol")
    expect(texts(stranger)).to_have_text(["from the first carol", "a different carol"])
    expect(stranger.locator(".message")).to_have_class([NOT_OWN, OWN])


def test_logging_out_with_the_pages_button_closes_its_socket_and_the_page_says_so(runserver, new_page):
    create_user(runserver, "ann")
    ann = new_page()
    sockets = []
    ann.on("websocket", lambda socket: sockets.append(socket))
    ann.clock.install()
    ann.goto("http://127.0.0.1:%d/?room=lobby" % runserver.port)
    ann.get_by_role("button", name="Join as a guest").click()
    expect(ann.locator("#status")).to_have_attribute("data-state", "connected", timeout=CONNECT_TIMEOUT)
    ann.click("#account >> text=Log in")
    log_in(ann, "ann", "lobby")
    other_tab = ann.context.new_page()
    other_tab.goto("http://127.0.0.1:%d/?room=kitchen" % runserver.port)
    expect(other_tab.locator("#status")).to_have_text("ann in kitchen (signed in)", timeout=CONNECT_TIMEOUT)
    watcher = open_room(new_page(), runserver.port, "lobby", "watcher")
    expect(watcher.locator("#members .name")).to_have_text(["ann", "watcher"])

    with sockets[-1].expect_event("close"):
        ann.click("#account >> text=Log out")

    # Both tabs were signed out: each says so, shows a guest's account bar, and stays out.
    for page in (ann, other_tab):
        expect(page.locator("#status")).to_have_attribute("data-state", "signed-out")
        expect(page.locator(".note.alert")).to_have_text([re.compile("^you were signed out")])
        expect(page.locator("#account")).to_have_attribute("data-signed-in", "0")
        expect(page.locator("#account a")).to_have_text(["Log in", "Sign up"])
        expect(page.locator("#handle")).to_be_editable()
    expect(watcher.locator("#members .name")).to_have_text(["watcher"])
    ann.clock.run_for(60000)  # longer than any backoff would wait
    expect(ann.locator("#status")).to_have_attribute("data-state", "signed-out")
    assert len(sockets) == 2, [socket.url for socket in sockets]  # the guest's before logging in, and ann's

    # A guest again: the room's link asks for a name, as it asks any guest.
    ann.reload()
    expect(ann.locator("#account")).to_have_attribute("data-signed-in", "0")
    expect(ann.locator("#handle")).to_be_focused()
    ann.get_by_role("button", name="Join as a guest").click()
    expect(ann.locator("#status")).to_have_text(re.compile(r"^guest-[0-9a-f]{6} in lobby \(guest\)$"),
                                                timeout=CONNECT_TIMEOUT)


def test_staff_delete_a_message_for_everyone_and_mute_a_member(runserver, new_page):
    create_user(runserver, "mod", staff=True)
    spammer = open_room(new_page(), runserver.port, "lobby", "spammer")
    mod = new_page()
    mod.goto("http://127.0.0.1:%d/accounts/login/?%s" % (runserver.port, urlencode({"next": "/?room=lobby"})))
    log_in(mod, "mod", "lobby")
    for text in ("before", "buy now", "after"):
        say(spammer, text)
    expect(texts(mod)).to_have_text(["before", "buy now", "after"])
    expect(mod.locator(".message .delete")).to_have_count(3)
    expect(mod.locator("#members .mute")).to_have_count(1)  # for spammer, not for mod
    expect(spammer.locator(".mod")).to_have_count(0)

    mod.locator(".message", has_text="buy now").locator(".delete").click()

    for page in (mod, spammer):
        expect(texts(page)).to_have_text(["before", "after"])
        expect(page.locator(".note.moderation")).to_have_text(["mod deleted a message from spammer"])

    mod.locator("#members .member", has_text="spammer").locator(".mute").click()

    expect(spammer.locator(".note.moderation").last).to_have_text("mod muted you here for 5 min")
    expect(mod.locator(".note.moderation").last).to_have_text("mod muted spammer here for 5 min")
    say(spammer, "can you hear me?")
    expect(spammer.locator("#send-error")).to_have_text(
        "A moderator muted you here: this message was not sent. You can write again in 5 min.")
    expect(spammer.locator("#message")).to_have_value("can you hear me?")
    say(mod, "quiet now")
    expect(texts(spammer)).to_have_text(["before", "after", "quiet now"])
    expect(texts(mod)).to_have_text(["before", "after", "quiet now"])


def test_with_guests_turned_away_a_guest_is_asked_to_sign_in_and_not_retried(start_runserver, page):
    server = start_runserver(CHAT_GUESTS="0")
    open_room(page, server.port, "lobby", "bob", connected=False)

    expect(page.locator("#status")).to_have_attribute("data-state", "refused", timeout=CONNECT_TIMEOUT)
    expect(page.locator("#join-error")).to_have_text("Guests cannot chat here: log in or sign up, then join.")


def test_a_page_signed_out_in_another_tab_before_it_joined_says_so_and_joins_as_a_guest(runserver, new_page):
    create_user(runserver, "ann")
    first = new_page()
    first.goto("http://127.0.0.1:%d/accounts/login/" % runserver.port)
    first.fill("#id_username", "ann")
    first.fill("#id_password", PASSWORD)
    first.click("main form button")
    expect(first.locator("#handle")).to_have_value("ann")
    second = first.context.new_page()
    second.goto("http://127.0.0.1:%d/" % runserver.port)

    second.click("#account >> text=Log out")  # in a tab that is in no room
    expect(second.locator(".note.alert")).to_have_text([re.compile("^you were signed out")])
    first.fill("#room", "lobby")
    first.get_by_role("button", name="Join", exact=True).click()

    expect(first.locator("#status")).to_have_text(re.compile(r"^guest-[0-9a-f]{6} in lobby \(guest\)$"),
                                                  timeout=CONNECT_TIMEOUT)
    expect(first.locator(".note.alert")).to_have_text([re.compile("^you were signed out before this page joined")])
    expect(first.locator("#account")).to_have_attribute("data-signed-in", "0")
    expect(first.locator("#handle")).to_be_editable()


# ---------------------------------------------------------------- what a person typed is never lost

NOT_JOINED = {"en": "Not sent: this connection is in no room any more. Join the room again, then send it.",
              "zh-CN": "没有发出：这个连接已不在任何房间里。重新加入房间，再发送。"}
TOO_LARGE = {"en": "Not sent: the server closed the connection because this message was too large. Shorten it, "
                   "then send it again.",
             "zh-CN": "没有发出：这条消息太大，服务器关闭了连接。请删短一些再发送。"}
TOO_FAST = {"en": "Not sent: the server closed the connection because messages came too fast. Send it again once "
                  "reconnected.",
            "zh-CN": "没有发出：消息来得太快，服务器关闭了连接。重新连接后再发送。"}
RATE_LIMITED = {"en": "Too many messages at once: this one was not sent. Send it again in ",
                "zh-CN": "一下子发得太多了：这条没有发出。"}
LOST = {"en": "Not sent: the connection was lost. It is still here: send it again once reconnected.",
        "zh-CN": "没有发出：连接断开了。消息还在这里：重新连接后再发送。"}


def answering(page, refuse):
    """Route the page's room socket through to the server, but answer a frame whose message is
    "refuse me" with ``refuse(route)`` instead of passing it on."""
    def handler(route):
        server = route.connect_to_server()

        def from_page(message):
            if json.loads(message).get("message") == "refuse me":
                refuse(route)
            else:
                server.send(message)

        route.on_message(from_page)

    page.route_web_socket(re.compile(r"/lobby/"), handler)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("refuse, reason", [
    (lambda route: route.send(json.dumps({"type": "error", "code": "not_joined", "detail": "this socket is in no room"})),
     NOT_JOINED),
    (lambda route: route.close(code=1009, reason="message too big"), TOO_LARGE),
    (lambda route: route.close(code=1008, reason="rate limit: too many frames, too fast"), TOO_FAST),
], ids=["not-joined", "closed-1009", "closed-1008"])
def test_a_refused_or_closed_send_leaves_the_text_in_the_box_with_the_reason(runserver, new_page, language, refuse,
                                                                             reason):
    page = new_page(locale=language)
    answering(page, refuse)
    open_room(page, runserver.port, "lobby", "ann")

    say(page, "refuse me")

    expect(page.locator("#send-error")).to_have_text(reason[language])
    expect(page.locator("#message")).to_have_value("refuse me")
    expect(texts(page)).to_have_count(0)


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_message_over_the_rate_keeps_its_text_and_says_when_to_send_again(start_runserver, new_page, language):
    server = start_runserver(CHAT_RATE_LIMIT="0.2/s:1")
    page = open_room(new_page(locale=language), server.port, "lobby", "ann")

    say(page, "one")
    say(page, "two")

    expect(page.locator("#send-error")).to_contain_text(RATE_LIMITED[language])
    expect(page.locator("#message")).to_have_value("two")
    expect(texts(page)).to_have_text(["one"])


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_message_sent_as_the_connection_drops_stays_and_is_sent_after_the_reconnect(
        restartable_server, new_page, language):
    page = open_room(new_page(locale=language), restartable_server.port, "lobby", "ann")
    restartable_server.stop()
    expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting")

    say(page, "typed while away")
    expect(page.locator("#message")).to_have_value("typed while away")
    restartable_server.start()
    expect(page.locator("#status")).to_have_attribute("data-state", "connected", timeout=RECONNECT_TIMEOUT)
    expect(page.locator("#message")).to_have_value("typed while away")
    page.press("#message", "Enter")

    expect(texts(page)).to_have_text(["typed while away"])
    expect(page.locator("#message")).to_have_value("")


def test_a_lost_connection_under_a_pending_message_keeps_it_and_says_so(runserver, new_page):
    page = new_page()
    answering(page, lambda route: route.close(code=1011, reason="gone"))
    open_room(page, runserver.port, "lobby", "ann")

    say(page, "refuse me")

    expect(page.locator("#send-error")).to_have_text(LOST["en"])
    expect(page.locator("#message")).to_have_value("refuse me")


# ---------------------------------------------------------------- a layer with no exactness at join

def fake_room(page, frames_after_welcome):
    """Serve the page's room socket from the test: a welcome, then ``frames_after_welcome`` as given."""
    def handler(route):
        route.send(json.dumps({"type": "welcome", "room": "lobby", "handle": "ann", "signed_in": False, "staff": False,
                               "sender": "ann-id", "members": ["ann"], "members_signed_in": []}))
        for frame in frames_after_welcome:
            route.send(json.dumps(frame))

    page.route_web_socket(re.compile(r"/lobby/"), handler)


def chat_message(seq, text):
    return {"type": "message", "room": "lobby", "handle": "bob", "signed_in": False, "sender": "bob-id",
            "message": text, "ts": 1764000000000 + seq, "seq": seq}


def history(*messages):
    return {"type": "history", "room": "lobby", "messages": list(messages), "upto": max(m["seq"] for m in messages)}


@pytest.mark.parametrize("frames", [
    [history(chat_message(1, "one"), chat_message(2, "two")), chat_message(2, "two"), chat_message(3, "three"),
     chat_message(3, "three")],
    [chat_message(3, "three"), history(chat_message(1, "one"), chat_message(2, "two"))],
    [history(chat_message(1, "one")), chat_message(3, "three"), chat_message(2, "two")],
    [chat_message(3, "three"), chat_message(2, "two"), history(chat_message(1, "one"), chat_message(2, "two"))],
], ids=["duplicates", "live-before-history", "out-of-order", "all-at-once"])
def test_the_page_shows_each_message_once_in_seq_order_whatever_order_the_frames_come_in(runserver, page, frames):
    fake_room(page, frames)

    open_room(page, runserver.port, "lobby", "ann")

    expect(texts(page)).to_have_text(["one", "two", "three"])
    assert [seq for seq, _ in shown(page)] == [1, 2, 3]
