"""A small asyncio chat client for the end-to-end tests (the `websockets` library)."""
import asyncio
import concurrent.futures
import contextlib
import json
from urllib.parse import quote

from websockets.asyncio.client import connect

TIMEOUT = 30


def url(port, room, handle=None, since=None):
    query = "&".join(part for part in ("handle=" + quote(handle) if handle else "",
                                       "since=%d" % since if since is not None else "") if part)
    return "ws://127.0.0.1:%d/%s/" % (port, quote(room)) + ("?" + query if query else "")


def join(port, room, handle=None, since=None, **kwargs):
    """``async with join(port, room) as ws``: a socket in ``room``, opened as a page from the server would;
    ``since``: reconnecting after the message with that seq."""
    kwargs.setdefault("origin", "http://127.0.0.1:%d" % port)
    return connect(url(port, room, handle, since), open_timeout=TIMEOUT, max_queue=None, **kwargs)


@contextlib.asynccontextmanager
async def sockets_in(port, room, count):
    """``async with sockets_in(port, room, n) as sockets``: n open sockets in ``room``, closed after."""
    sockets = [await join(port, room).__aenter__() for _ in range(count)]
    try:
        yield sockets
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))


async def next_frame(ws, timeout=TIMEOUT):
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def joined(ws, timeout=TIMEOUT):
    """The two frames a socket receives first in its room: ``(welcome, history)``."""
    welcome, history = await next_frame(ws, timeout), await next_frame(ws, timeout)
    assert (welcome["type"], history["type"]) == ("welcome", "history"), (welcome, history)
    return welcome, history


async def frames_until(ws, done, timeout=TIMEOUT):
    """Collect frames until ``done(frames)`` is true; fail after ``timeout`` seconds."""
    frames = []
    async with asyncio.timeout(timeout):
        while not done(frames):
            frames.append(json.loads(await ws.recv()))
    return frames


async def messages(ws, count, timeout=TIMEOUT):
    """The next ``count`` chat messages on ``ws`` (other frame types are kept out)."""
    frames = await frames_until(ws, lambda got: sum(f["type"] == "message" for f in got) >= count, timeout)
    return [frame for frame in frames if frame["type"] == "message"]


async def each_sends_on_open(port, count):
    """The note's section 五: ``count`` clients, each in its own room, send the moment their
    socket opens; what each got back, in client order."""

    async def client(number):
        async with join(port, "race-%d" % number) as ws:
            await ws.send("hello world %d" % number)
            return (await messages(ws, 1))[0]["message"]

    return await asyncio.gather(*(client(number) for number in range(count)))


def run(coroutine):
    """Run ``coroutine`` to the end on a new event loop in its own thread.

    Its own thread because Playwright's sync API (the browser tests) keeps an event
    loop running in the main thread, where asyncio.run() refuses to start another.
    """
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


class RoomView:
    """What a page shows of a room, on any channel layer: the page's own rules (static/chat.js) for a
    layer without the join gate (asgi_redis's own). Live messages that come before the history
    wait for it; a message whose ``seq`` is shown already is dropped; each is placed by its ``seq``."""

    def __init__(self):
        self.welcome, self.history, self.early, self.shown = None, None, [], {}

    def take(self, frame):
        if frame["type"] == "welcome":
            self.welcome = frame
        elif frame["type"] == "history":
            self.history = frame
            for item in frame["messages"] + self.early:
                self.shown.setdefault(item["seq"], item)
            self.early = []
        elif frame["type"] == "message":
            if self.history is None:
                self.early.append(frame)
            else:
                self.shown.setdefault(frame["seq"], frame)

    def messages(self):
        """The messages shown, in the room's order."""
        return [self.shown[seq] for seq in sorted(self.shown)]

    async def until(self, ws, done, timeout=TIMEOUT):
        """Take frames from ``ws`` until ``done(self)``."""
        async with asyncio.timeout(timeout):
            while not done(self):
                self.take(json.loads(await ws.recv()))
        return self
