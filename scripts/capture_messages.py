"""Print the raw messages daphne 1.4.2 puts on the channel layer for one WebSocket.

    .venv/bin/python scripts/capture_messages.py

Starts redis-server and daphne only, exactly as scripts/prod does (the Procfile's
``web``, through channels_example.topology), and no runworker: this script plays the worker. It opens
a real WebSocket to the room /聊天室/ (percent-encoded, as a browser sends it) with
?handle=ann and an Origin header, takes websocket.connect off the layer and replies
{"accept": True}, sends one text frame and one binary frame, closes, and prints each
message as JSON exactly as a consumer would find it in ``message.content``. JSON has
no bytes, so a bytes value is shown as its Python literal in a string ("b'host'").
Everything it started is stopped by PID when it ends. docs/message.md shows its output.

    .venv/bin/python scripts/capture_messages.py --replies

does the other half instead: it answers websocket.connect with each kind of reply a
consumer can send (accept, close with and without a code, text, bytes, and invalid
ones) and prints what the client saw and what daphne logged.
"""
import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from channels_example.topology import Process, free_port, production_env, redis_argv, web  # noqa: E402

# Any value: only this script's own daphne reads it.
SECRET_KEY = "capture-messages-only"
PATH = "/%E8%81%8A%E5%A4%A9%E5%AE%A4/"  # /聊天室/
QUERY = "handle=ann"
TEXT = '{"message": "你好"}'
BINARY = b"\x00\x01hi\xff"
TIMEOUT = 20


def readable(value):
    """The message with every bytes value replaced by its Python literal, so JSON can show it."""
    if isinstance(value, bytes):
        return repr(value)
    if isinstance(value, dict):
        return {key: readable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [readable(item) for item in value]
    return value


def as_json(message):
    """One key per line, and one header per line: valid JSON that reads like the dict it is."""
    lines = []
    for key, value in readable(message).items():
        if key == "headers":
            rows = ",\n".join("    " + json.dumps(row, ensure_ascii=False) for row in value)
            lines.append('  "headers": [\n%s\n  ]' % rows)
        else:
            lines.append("  %s: %s" % (json.dumps(key), json.dumps(value, ensure_ascii=False)))
    return "{\n%s\n}" % ",\n".join(lines)


def take(layer, channel, show=True):
    """The next message on ``channel``, as a worker's receive gets it."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        name, content = layer.receive([channel], block=True)
        if name is not None:
            if show:
                print("\n%s  (from the channel layer)\n%s" % (name, as_json(content)))
            return content
    raise RuntimeError("nothing arrived on %s within %d s" % (channel, TIMEOUT))


def reply(layer, channel, content):
    layer.send(channel, content)
    print("\n%s  (sent by this script, as ws_connect would)\n%s" % (channel, json.dumps(content)))


# Each case: the replies sent, in order, right after websocket.connect is taken.
REPLY_CASES = [
    [{"accept": False}],
    [{"close": 4400}],
    [{"text": "hello, sent before any accept"}, {"close": True}],
    [{"accept": True, "text": "refused: here is why", "close": 4400}],
    [{"accept": True}, {"text": ""}, {"close": 1011}, {"text": "a", "bytes": b"b"}, {"text": "c", "foo": 1},
     {"accept": False, "text": "d"}, {"bytes": b"\x01\x02"}, {"text": "e", "close": 4321}],
]


async def show_replies(layer, port, daphne):
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    for replies in REPLY_CASES:
        opening = asyncio.ensure_future(connect("ws://127.0.0.1:%d/lobby/" % port, origin="http://127.0.0.1:%d" % port,
                                                open_timeout=TIMEOUT))
        channel = (await asyncio.to_thread(take, layer, "websocket.connect", False))["reply_channel"]
        print("\nreplies, in order:")
        for content in replies:
            layer.send(channel, content)
            print("  " + json.dumps(readable(content)))
        try:
            socket = await opening
        except InvalidStatus as refused:
            print("client: handshake refused with HTTP %d" % refused.response.status_code)
            continue
        print("client: open")
        try:
            while True:
                print("client: received %r" % await asyncio.wait_for(socket.recv(), TIMEOUT))
        except ConnectionClosed:
            print("client: closed by the server with code %s" % socket.close_code)
    # daphne runs unbuffered and logged these before it sent the frames that followed them.
    print("\ndaphne logged:")
    for line in daphne.read_log().splitlines():
        if "send decode error" in line:
            print("  " + line.split("ERROR", 1)[-1].strip())


async def play(layer, port):
    from websockets.asyncio.client import connect

    url = "ws://127.0.0.1:%d%s?%s" % (port, PATH, QUERY)
    print("\nclient: connecting to %s" % url)
    opening = asyncio.ensure_future(connect(url, origin="http://127.0.0.1:%d" % port, open_timeout=TIMEOUT))
    connect_message = await asyncio.to_thread(take, layer, "websocket.connect")
    reply(layer, connect_message["reply_channel"], {"accept": True})
    socket = await opening
    print("\nclient: open; sending the text frame %s" % TEXT)
    await socket.send(TEXT)
    await asyncio.to_thread(take, layer, "websocket.receive")
    print("\nclient: sending the binary frame %r" % BINARY)
    await socket.send(BINARY)
    await asyncio.to_thread(take, layer, "websocket.receive")
    print("\nclient: closing (code 1000)")
    await socket.close()
    await asyncio.to_thread(take, layer, "websocket.disconnect")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replies", action="store_true", help="show what each kind of reply does instead")
    options = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    folder = tempfile.mkdtemp(prefix="capture_messages-")
    started = []
    try:
        redis_port = free_port()
        started.append(Process("redis-server", redis_argv(redis_port, folder), port=redis_port,
                               log_path=os.path.join(folder, "redis.log")).start())
        redis_url = "redis://127.0.0.1:%d/0" % redis_port
        # This process reads the layer with the same settings as daphne.
        os.environ.update(REDIS_URL=redis_url, SECRET_KEY=SECRET_KEY, DEBUG="0",
                          DJANGO_SETTINGS_MODULE="channels_example.settings")
        daphne_port = free_port()
        started.append(web(daphne_port, production_env(redis_url), log_path=os.path.join(folder, "daphne.log")).start())
        for process in started:
            print("started %-12s pid %-7d 127.0.0.1:%d" % (process.name, process.pid, process.port))
        print("channel layer %s (no runworker: this script is the worker)" % redis_url)

        import django

        django.setup()
        from channels_example.asgi import channel_layer

        if options.replies:
            asyncio.run(show_replies(channel_layer, daphne_port, started[-1]))
        else:
            asyncio.run(play(channel_layer, daphne_port))
    except Exception:
        for process in started:
            sys.stderr.write("--- %s log:\n%s\n" % (process.name, process.read_log()))
        raise
    finally:
        # Stop first, print after: a reader that went away (| head) must not leave servers running.
        for process in reversed(started):
            process.stop()
        shutil.rmtree(folder, ignore_errors=True)
        print()
        for process in reversed(started):
            print("stopped %s (pid %d)" % (process.name, process.pid))


if __name__ == "__main__":
    main()
