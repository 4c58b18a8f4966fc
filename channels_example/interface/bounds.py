"""daphne 1.4.2's protocols with bounds: nothing one client sends can exhaust the server.

daphne sets no frame or body size limit, writes to a socket with no backpressure, and
takes every frame a client sends; these subclasses of its own classes bound each of
those where it costs least, before anything reaches Redis, and refuse with a reason
(a close code, an error frame, an HTTP status), logged with the client's address:

* **Frames**: autobahn's payload limits (WEBSOCKET_MAX_PAYLOAD bytes) on every socket;
  a larger frame is refused with 1009 as soon as its header says so, before daphne
  holds it. ``failByDrop`` is off, so every refusal of autobahn's (1007 for text that is
  not UTF-8, 1002 for a protocol error) reaches the client as a close frame too.
* **HTTP bodies**: a body over HTTP_MAX_BODY bytes gets 413 right after its headers
  (a chunked one as soon as it passes the limit), a multipart body 415; neither is
  read on or sent to a worker. No view takes either.
* **Slow readers**: a socket whose unsent output passes SOCKET_MAX_UNSENT bytes is
  closed with 1008; what daphne then has for it is dropped, not buffered. daphne also
  no longer counts its own sends as signs of life, so a socket that never answers is
  pinged out even in a busy room.
* **Frame length and backlog** (frames.py): a frame too long for a worker is answered at once
  with an error frame; a socket with SOCKET_BACKLOG frames not yet handled is closed with 1013.
* **Rate**: each socket's frames pass a token bucket (CHAT_RATE_LIMIT); a frame over it
  gets a ``rate_limited`` error frame with ``retry_after`` and goes nowhere, and a
  socket that sends a whole burst more while refused is closed with 1008.
* **One reading of every request** (channels_example.interface.handshake): 400 for a
  header daphne's parsers would read two ways, 403 for a handshake with ``Origin: null``.
* **Close reasons** (channels_example.interface.closes): every close frame says why.
* **Sockets per client**: at most SOCKETS_PER_CLIENT open sockets per client address
  (the address daphne sees, or X-Forwarded-For with ``--proxy-headers``); more are
  refused with HTTP 429. Loopback clients are not counted: behind a proxy on this host
  every client comes from loopback.

daphne is not forked: ``install()`` (channels_example/interface/__init__.py) hands its
Server these classes.
"""
import ipaddress
import logging

from autobahn.websocket.types import ConnectionDeny
from daphne.http_protocol import HTTPFactory, WebRequest
from daphne.utils import parse_x_forwarded_for
from daphne.ws_protocol import WebSocketProtocol
from django.conf import settings
from twisted.internet import reactor
from twisted.internet.interfaces import IPushProducer
from twisted.web import http
from zope.interface import implementer

from channels_example.chat import processes, protocol
from channels_example.interface import closes, frames, handshake, health
from channels_example.interface.ratelimit import TokenBucket

log = logging.getLogger(__name__)
# daphne's access log: one line per HTTP request and per socket's handshake, connect, rejection and disconnect.
access = logging.getLogger("daphne.access")

REASONS = {400: b"Bad Request", 403: b"Forbidden", 413: b"Payload Too Large", 415: b"Unsupported Media Type"}


class BoundedHTTPFactory(HTTPFactory):
    """daphne's factory, building the bounded protocols below."""

    protocol = None  # set below: BoundedHTTPChannel

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ws_factory.protocol = BoundedWebSocketProtocol
        self.ws_factory.setProtocolOptions(maxFramePayloadSize=settings.WEBSOCKET_MAX_PAYLOAD,
                                           maxMessagePayloadSize=settings.WEBSOCKET_MAX_PAYLOAD, failByDrop=False)
        self.sockets_by_client = {}
        self.figures = health.DaphneFigures(self)
        processes.start_heartbeat(processes.DAPHNES, self.send_channel)
        if hasattr(self.channel_layer, "connect_refused"):
            # The layer writes connects from a thread: its refusals come back through the reactor.
            self.channel_layer.connect_refused = lambda socket: reactor.callFromThread(self.refuse_connect, socket)

    def refuse_connect(self, reply_channel):
        """A connect the layer took and then could not write: 503, as daphne answers one refused at once."""
        protocol = self.reply_protocols.get(reply_channel)
        handshake = getattr(protocol, "handshake_deferred", None)
        if handshake is None or handshake.called:
            return
        protocol.muted = True  # no disconnect for a connect no worker saw
        handshake.errback(ConnectionDeny(code=503, reason="Connection queue at capacity"))

    def dispatch_reply(self, channel, message):
        super().dispatch_reply(channel, message)
        # daphne 1.4.2 sends a text reply only when it is truthy: an empty text frame was dropped,
        # and the note's echo (channels_example/echo.py) never sent an empty message back.
        if message.get("text") == "" and not message.get("bytes") and not message.get("close"):
            protocol = self.reply_protocols.get(channel)
            if isinstance(protocol, WebSocketProtocol) and protocol.state == protocol.STATE_OPEN:
                protocol.serverSend("", False)

    def log_action(self, protocol, action, details):
        """daphne's access log as lines of ``daphne.access``, in the format of every process (settings.LOGGING),
        in place of daphne's own (NCSA-like, on stdout) and runserver's (another, on stderr)."""
        if protocol == "http":
            access.info("%s %s %s %s, %s bytes in %.3f s", details["client"], details["method"], details["path"],
                        details["status"], details["size"], details["time_taken"])
        else:
            access.info("%s WebSocket %s %s", details["client"], details["path"], action)

    def buildProtocol(self, addr):
        channel = http.HTTPFactory.buildProtocol(self, addr)
        channel.requestFactory = BoundedWebRequest
        return channel


class BoundedHTTPChannel(handshake.OneReadingChannel):
    """Refuses a request whose body is too large, or multipart, as soon as its headers are in."""

    def allHeadersReceived(self):
        request = self.requests[-1]
        content_type = (request.requestHeaders.getRawHeaders(b"content-type") or [b""])[0].lower()
        if content_type.startswith(b"multipart/"):
            return request.refuse(415, "multipart bodies are not accepted: no page here takes an upload")
        if self.length is not None and self.length > settings.HTTP_MAX_BODY:
            return request.refuse(413, "a request body has at most %d bytes, this one has %d"
                                  % (settings.HTTP_MAX_BODY, self.length))
        super().allHeadersReceived()


BoundedHTTPFactory.protocol = BoundedHTTPChannel


class BoundedWebRequest(WebRequest):
    refused = False

    def process(self):
        refusal = handshake.refusal(self)
        if refusal is not None:
            return self.refuse(*refusal)
        if self.path == b"/healthz" and self.method in (b"GET", b"HEAD"):
            # Answered here when Redis is down, before daphne's process() has set the client its
            # response's log line names (it sets it again when the request is forwarded).
            self.client_addr = None
            return health.healthz(self, super().process)
        super().process()

    def handleContentChunk(self, data):
        if self.refused:
            return
        if self.content.tell() + len(data) > settings.HTTP_MAX_BODY:
            return self.refuse(413, "a request body has at most %d bytes" % settings.HTTP_MAX_BODY)
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version):
        if not self.refused:
            super().requestReceived(command, path, version)

    def refuse(self, status, detail):
        """Answer now, read nothing more, and close; the request never reaches a worker."""
        self.refused = True
        self.factory.reply_protocols.pop(self.reply_channel, None)
        self.reply_channel = None
        peer = self.channel.transport.getPeer()
        log.warning("refused an HTTP request from %s:%s with %d: %s", getattr(peer, "host", "?"),
                    getattr(peer, "port", "?"), status, detail)
        body = detail.encode("utf-8") + b"\n"
        self.channel.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (status, REASONS[status], len(body), body))
        self.channel.loseConnection()


@implementer(IPushProducer)
class _UnsentOutput:
    """Told by Twisted when a socket's output buffer fills (over its bufferSize, 64 KiB) and drains."""

    def __init__(self):
        self.full, self.since_full = False, 0

    def pauseProducing(self):
        # Twisted calls it again on every write while the buffer is full: count from the first.
        if not self.full:
            self.full, self.since_full = True, 0

    def resumeProducing(self):
        self.full, self.since_full = False, 0

    def stopProducing(self):
        self.full = False


class BoundedWebSocketProtocol(closes.ReasonedCloses, WebSocketProtocol):
    client_counted = None
    unsent = None
    bucket = None
    over_backlog = False

    def onConnect(self, request):
        host = self._client_host()
        limit = settings.SOCKETS_PER_CLIENT
        if limit is not None and host is not None and not _is_loopback(host):
            counts = self.main_factory.sockets_by_client
            if counts.get(host, 0) >= limit:
                log.warning("refused a socket from %s with 429: %d open already (SOCKETS_PER_CLIENT)", host, limit)
                raise ConnectionDeny(429, "at most %d open connections per client" % limit)
            counts[host] = counts.get(host, 0) + 1
            self.client_counted = host
        if settings.CHAT_RATE_LIMIT is not None:
            self.bucket = TokenBucket(*settings.CHAT_RATE_LIMIT)
        self.refused_in_a_row = 0
        self.handled = 1  # the order of this socket's next frame not yet handled, as last asked
        self.channel_layer = frames.SocketSends(self.main_factory.channel_layer,
                                                self.unquote(request.path.encode("ascii")))
        return super().onConnect(request)

    def onOpen(self):
        super().onOpen()
        # Our producer instead of the HTTP channel's: Twisted then says when the output is full.
        self.unsent = _UnsentOutput()
        self.transport.unregisterProducer()
        self.transport.registerProducer(self.unsent, True)

    def onMessage(self, payload, isBinary):
        if self.over_backlog:  # closing: nothing more goes to the workers
            return
        if self.muted:
            return super().onMessage(payload, isBinary)
        if self.bucket is not None:
            retry_after = self.bucket.take()
            if retry_after:
                return self._refuse_over_rate(retry_after)
            self.refused_in_a_row = 0
        refused = frames.too_long(payload, isBinary)
        if refused is not None:
            self.main_factory.figures.errors["message_too_long"] += 1
            return self.sendMessage(refused["text"].encode("utf-8"))
        order = self.packets_received + 1
        if order - self.handled >= settings.SOCKET_BACKLOG:
            self.handled = frames.handled_upto(self.reply_channel, self.unquote(self.path), self.handled)
            if order - self.handled >= settings.SOCKET_BACKLOG:
                return self._close_over_backlog()
        super().onMessage(payload, isBinary)

    def _close_over_backlog(self):
        """Close with 1013, "try again later": this socket's frames wait for the workers, not everyone's.
        Later frames go nowhere; daphne's onClose sends the disconnect, after the last frame sent."""
        log.warning("closing %s from %s with 1013: %d frames waiting to be handled (SOCKET_BACKLOG)",
                    self.reply_channel, self._client_host(), settings.SOCKET_BACKLOG)
        self.over_backlog = True
        self.close_with(1013, "too many messages waiting for the server: slow down")

    def _refuse_over_rate(self, retry_after):
        self.refused_in_a_row += 1
        if self.refused_in_a_row > self.bucket.burst:
            log.warning("closing %s from %s with 1008: kept sending over the rate limit", self.reply_channel,
                        self._client_host())
            return self.close_with(1008, "rate limit: too many frames, too fast")
        frame = protocol.error("rate_limited", "too many messages: wait %.1f s" % retry_after,
                               retry_after=round(retry_after, 2))
        self.main_factory.figures.errors["rate_limited"] += 1
        self.sendMessage(frame["text"].encode("utf-8"))

    def serverSend(self, content, binary=False):
        """daphne's, but what we send is no sign of life from the client (``last_data``), output is
        bounded, and a message sent to many sockets (a room's) is framed once for all of them."""
        if self.state == self.STATE_CONNECTING:
            self.serverAccept()
        prepared = _framed(self.factory, content, binary)
        if self.unsent is not None and self.unsent.full:
            self.unsent.since_full += len(prepared.payload)
            if self.unsent.since_full > settings.SOCKET_MAX_UNSENT:
                return self._close_slow_reader()
        if self.state == self.STATE_OPEN and self._perMessageCompress is None:
            self.sendPreparedMessage(prepared)  # autobahn's: the frame's bytes, written as they are
        else:
            self.sendMessage(prepared.payload, binary)

    def _close_slow_reader(self):
        if self.state == self.STATE_OPEN:
            log.warning("closing %s from %s with 1008: it reads too slowly (over %d bytes unsent)",
                        self.reply_channel, self._client_host(), settings.SOCKET_MAX_UNSENT)
            # The close frame waits behind what is unsent; autobahn drops the connection if no
            # reply comes within its close handshake timeout, and daphne sends the disconnect.
            self.close_with(1008, "too slow: messages for you piled up unread")

    def close_with(self, code, reason):
        # sendCloseFrame, as daphne closes with 1013: autobahn's sendClose refuses codes below 3000 but 1000.
        self.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8")[:123], isReply=False)

    def sendMessage(self, payload, isBinary=False, *args, **kwargs):
        # autobahn applies maxMessagePayloadSize to what we send as well: a room's history
        # may be larger than any frame a client may send.
        limit, self.maxMessagePayloadSize = self.maxMessagePayloadSize, 0
        try:
            super().sendMessage(payload, isBinary, *args, **kwargs)
        finally:
            self.maxMessagePayloadSize = limit

    def onClose(self, wasClean, code, reason):
        if hasattr(self, "reply_channel"):  # an open socket, not a refused handshake
            closed = self.localCloseCode if self.closedByMe and self.localCloseCode else code
            self.main_factory.figures.closes[str(closed or 1006)] += 1
        if self.client_counted is not None:
            counts = self.main_factory.sockets_by_client
            counts[self.client_counted] -= 1
            if not counts[self.client_counted]:
                del counts[self.client_counted]
            self.client_counted = None
        super().onClose(wasClean, code, reason)

    def _client_host(self):
        peer = self.transport.getPeer()
        address = [peer.host, peer.port] if hasattr(peer, "host") else None
        factory = self.main_factory
        if factory.proxy_forwarded_address_header:
            address, _ = parse_x_forwarded_for(self.http_headers, factory.proxy_forwarded_address_header,
                                               factory.proxy_forwarded_port_header,
                                               factory.proxy_forwarded_proto_header, address)
        return address[0] if address else None


_last_framed = [None, None, None]  # content, binary, its PreparedMessage: daphne has one reactor thread


def _framed(ws_factory, content, binary):
    """The WebSocket frame for ``content``: a Group message reaches daphne once and is handed to it
    for each member in turn, the same text each time, so the last one framed is kept."""
    if _last_framed[0] is not content or _last_framed[1] != binary:
        payload = content if binary else content.encode("utf-8")
        _last_framed[:] = [content, binary, ws_factory.prepareMessage(payload, isBinary=binary)]
    return _last_framed[2]


def _is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

