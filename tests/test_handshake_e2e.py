"""End to end, with raw bytes on a socket: daphne reads every request one way (docs/security.md).

Against daphne, two runworkers and redis-server. Each handshake below is written byte for
byte, as an attacker would send it, and what comes back is read off the socket: a status
and, for a refusal, daphne's reason. A refused handshake never reaches autobahn or a worker:
its room hears no one join, and daphne logs the refusal with the client's address.
"""
import base64
import os
import socket

import pytest

from tests.chatclient import TIMEOUT
from tests.production import Stack

ORIGIN = b"Origin: http://localhost:8000"
SMUGGLED_ORIGIN = b"X-Note: hello%sOrigin: http://localhost:8000"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = Stack(tmp_path_factory.mktemp("handshake")).start(workers=2)
    yield stack
    stack.stop()


def send(port, head):
    """Send ``head`` (a request without a body) and read the answer: ``(status, body)``."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as connection:
        connection.sendall(head)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
        status_line, _, rest = answer.partition(b"\r\n")
        headers, _, body = rest.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in headers.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            chunk = connection.recv(65536)
            if not chunk:
                break
            body += chunk
    return int(status_line.split()[1]), body.decode("utf-8", "replace")


def handshake(port, *lines, target=b"/handshake/"):
    """A WebSocket handshake to ``target`` with Host, Upgrade, Connection and a key, then ``lines``."""
    key = base64.b64encode(os.urandom(16))
    head = (b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (target, port, key))
    return send(port, head + b"".join(line + b"\r\n" for line in lines) + b"\r\n")


def test_a_well_formed_handshake_is_accepted_tabs_and_utf_8_in_values_included(stack):
    status, _ = handshake(stack.port, ORIGIN, b"X-Note: a\tb", "X-Note-2: café 聊天".encode("utf-8"))
    assert status == 101


def test_a_handshake_with_no_origin_is_refused_with_403_by_the_worker(stack):
    status, _ = handshake(stack.port)
    assert status == 403


@pytest.mark.parametrize("separator", [b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x85"],
                         ids=["0b", "0c", "1c", "1d", "1e", "85"])
def test_an_origin_smuggled_after_a_byte_autobahn_splits_at_is_refused_with_400(stack, separator):
    status, reason = handshake(stack.port, SMUGGLED_ORIGIN % separator)
    assert status == 400
    assert reason.startswith("the X-Note header holds the byte 0x%02x" % separator[0])


FOLDED = "a header line starts with a space or a tab (a folded line): send each header on one line"
# What else could be read two ways, and the reason daphne gives.
MALFORMED = {
    "control byte": ([ORIGIN, b"X-Note: a\x01b"], "the X-Note header holds the byte 0x01"),
    "DEL": ([ORIGIN, b"X-Note: a\x7fb"], "the X-Note header holds the byte 0x7f"),
    "X-Forwarded-For smuggled": ([ORIGIN, b"X-Note: a\x0cX-Forwarded-For: 203.0.113.9"],
                                 "the X-Note header holds the byte 0x0c"),
    "Cookie smuggled": ([ORIGIN, b"X-Note: a\x85Cookie: sessionid=stolen"], "the X-Note header holds the byte 0x85"),
    "two Origins, ours first": ([ORIGIN, b"Origin: http://evil.example"], "the Origin header came more than once"),
    "two Origins, ours last": ([b"Origin: http://evil.example", ORIGIN], "the Origin header came more than once"),
    "two Hosts": ([ORIGIN, b"Host: evil.example"], "the Host header came more than once"),
    "two Cookies": ([ORIGIN, b"Cookie: a=1", b"Cookie: b=2"], "the Cookie header came more than once"),
    "two keys": ([ORIGIN, b"Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16))],
                 "the Sec-WebSocket-Key header came more than once"),
    "two versions": ([ORIGIN, b"Sec-WebSocket-Version: 13"], "the Sec-WebSocket-Version header came more than once"),
    "folded line": ([b"X-Note: a", b" " + ORIGIN], FOLDED),
    "folded with a tab": ([ORIGIN, b"X-Note: a", b"\tb"], FOLDED),
}


@pytest.mark.parametrize("lines, reason", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_handshake_its_parsers_could_read_two_ways_gets_400_with_the_reason(stack, lines, reason):
    status, said = handshake(stack.port, *lines)
    assert (status, said[:len(reason)]) == (400, reason)


def test_a_nel_in_the_query_string_gets_400(stack):
    # Twisted refuses the controls in a request target itself, but lets 0x7f to 0xb0 through.
    status, reason = handshake(stack.port, ORIGIN, target=b"/handshake/?a=\x85Origin:http://localhost:8000/")
    assert (status, reason.split(":")[0]) == (400, "the request target holds the byte 0x85")


def test_origin_null_is_refused_with_403_as_any_other_site_is(stack):
    status, reason = handshake(stack.port, b"Origin: null")
    assert status == 403
    assert reason.startswith("Origin: null (a page opened from a file or a sandboxed frame)")


def test_a_plain_http_request_with_such_a_header_gets_400_too(stack):
    head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Note: hello\x0bHost: evil.example\r\n\r\n" % stack.port
    status, reason = send(stack.port, head)
    assert (status, reason.split(":")[0]) == (400, "the X-Note header holds the byte 0x0b")


def test_refused_handshakes_never_reach_a_worker_and_daphne_logs_each_with_the_client(stack):
    handshake(stack.port, SMUGGLED_ORIGIN % b"\x0b", target=b"/never-joined/")
    handshake(stack.port, b"Origin: null", target=b"/never-joined/")
    daphne, workers = stack.logs(stack.daphnes), stack.logs(stack.workers)
    assert "refused an HTTP request from 127.0.0.1:" in daphne
    assert "with 400: the X-Note header holds the byte 0x0b" in daphne
    assert "with 403: Origin: null" in daphne
    assert "never-joined" not in workers
