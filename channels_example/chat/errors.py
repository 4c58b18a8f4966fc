"""Client errors in one place: a ``ProtocolError`` a consumer raises becomes the client's answer, a
figure and a log line, as the 1.x multichat's ``catch_client_error`` does.

A consumer raises ``protocol.ProtocolError(code, detail)`` where the client broke the protocol;
``@catch_client_error`` around it answers:

* on ``websocket.connect``, the refusal: accept, the error frame and close 4400 in one reply
  (``ProtocolError.refusal``), so a browser can show the reason instead of a bare 403;
* on any other frame, the error frame, to the sender alone; the socket stays open.

Either way the code is counted for /metrics (chat.metrics.count_error) and a line is logged with
the client, the path and the reason.
"""
import functools
import logging

from channels_example.chat import metrics, protocol

log = logging.getLogger(__name__)


def client_of(message):
    """``host:port`` of the socket's client, as daphne saw it, for log lines."""
    client = message.content.get("client")
    return "%s:%s" % tuple(client) if client else "unknown client"


def catch_client_error(consumer):
    @functools.wraps(consumer)
    def inner(message, *args, **kwargs):
        try:
            return consumer(message, *args, **kwargs)
        except protocol.ProtocolError as refused:
            metrics.count_error(refused.code)
            path = message.content.get("path", "")
            if message.channel.name == "websocket.connect":
                log.warning("refused %s: path %r: %s", client_of(message), path, refused)
                message.reply_channel.send(refused.refusal())
            else:
                log.info("refused a frame of %s on %r: %s: %s", message.reply_channel.name, path, refused.code,
                         refused)
                message.reply_channel.send(refused.frame())

    return inner
