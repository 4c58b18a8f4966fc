"""One reading of every request: daphne refuses what its parsers would read two ways.

daphne 1.4.2 parses a request with Twisted and, for a WebSocket handshake, writes the
parsed headers out again for autobahn (``daphne/http_protocol.py``, ``WebRequest.process``),
which decodes them as ISO-8859-1 and splits them with ``str.splitlines()``: that breaks
lines at \\x0b, \\x0c, \\x1c, \\x1d, \\x1e and \\x85 as well, which Twisted keeps inside a
value. A header ``X-Note: hello\\x0bOrigin: http://localhost:8000`` was one header to
Twisted and two to autobahn, and the worker reads autobahn's copy: any header the chat
trusts (Origin, Cookie, X-Forwarded-For under ``--proxy-headers``) could be forged
(CVE-2026-44546, fixed in daphne 4.2.2, never in 1.x). Twisted also joins repeated headers
with commas, so what the Origin check read of two Origin headers depended on their order.

So, before the request is processed (and so before autobahn or a worker sees it):

* **400** for a byte that some parser on the way takes for a line break or HTTP does not
  allow, in a header's name or value or in the request target: every control but tab
  (Twisted refuses NUL, CR and LF itself), DEL, and \\x85 (NEL), the bytes daphne 4.2.2
  refuses and more;
* **400** for a header that must come once and came twice: Origin, Host, Cookie,
  Sec-WebSocket-Key, Sec-WebSocket-Version;
* **400** for a folded header line (one starting with a space or a tab, RFC 9112's
  obs-fold), which Twisted would join to the line before;
* **403** for a WebSocket handshake with ``Origin: null`` (a page opened from a file or a
  sandboxed frame): refused as a handshake from any other site is, where autobahn answered 400.

These hold for plain HTTP requests too: daphne does not write those out again (their
headers reach the worker as a list of pairs, each value whole), so none of this could forge
a header there, but no client that follows HTTP sends such bytes, a second Host or a folded
line, and one set of rules for every request is one reading. Each refusal names what was
wrong and is logged with the client's address (channels_example.interface.bounds).
"""
from twisted.web.http import HTTPChannel

# A byte no header name, value or request target may hold: the C0 controls but tab, DEL,
# and NEL, which str.splitlines() takes for a line break once the bytes are ISO-8859-1 text.
FORBIDDEN = frozenset(range(0x00, 0x09)) | frozenset(range(0x0a, 0x20)) | {0x7f, 0x85}
# Headers a request carries at most once (RFC 9110 and RFC 6455): read twice, they are read two ways.
ONCE = (b"Origin", b"Host", b"Cookie", b"Sec-WebSocket-Key", b"Sec-WebSocket-Version")
FOLDED = "a header line starts with a space or a tab (a folded line): send each header on one line"


def refusal(request):
    """``(status, detail)`` for a request that could be read two ways, else None."""
    bad = _forbidden_byte(request.uri)
    if bad is not None:
        return 400, "the request target holds the byte 0x%02x: %s" % (bad, _WHY)
    for name, values in request.requestHeaders.getAllRawHeaders():
        for part in [name] + values:
            bad = _forbidden_byte(part)
            if bad is not None:
                return 400, "the %s header holds the byte 0x%02x: %s" % (name.decode("latin-1"), bad, _WHY)
    for name in ONCE:
        if len(request.requestHeaders.getRawHeaders(name, [])) > 1:
            return 400, "the %s header came more than once: send it once" % name.decode("ascii")
    if _is_handshake(request) and request.requestHeaders.getRawHeaders(b"Origin", [b""])[0].strip().lower() == b"null":
        return 403, ("Origin: null (a page opened from a file or a sandboxed frame) may not open a socket here: "
                     "open the page from this server")
    return None


class OneReadingChannel(HTTPChannel):
    """Twisted's HTTP channel, refusing a folded header line instead of joining it to the one before."""

    def lineReceived(self, line):
        # While a request is read (self.requests holds it) a line starting with a space or a tab
        # is a folded header line; as a request line, Twisted refuses it itself.
        if line[:1] in (b" ", b"\t") and self.requests:
            return self.requests[-1].refuse(400, FOLDED)
        return super().lineReceived(line)


_WHY = "control bytes (and 0x85) have no place in HTTP, and some parsers take them for line breaks"


def _forbidden_byte(data):
    return next((byte for byte in data if byte in FORBIDDEN), None)


def _is_handshake(request):
    """As daphne tells: its first Upgrade header says websocket."""
    return request.requestHeaders.getRawHeaders(b"Upgrade", [b""])[0].lower() == b"websocket"
