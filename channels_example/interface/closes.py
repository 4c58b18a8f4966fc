"""Every close frame the server starts says why: one reason per close code, here.

daphne 1.4.2 closes a socket with a code and nothing else: a worker's reply
``{"close": 4401}`` can carry no reason (daphne refuses any other key in a reply), and
daphne's own closes (1000 when a socket reaches its lifetime, 1013 when the layer refuses a
frame) send none. ``ReasonedCloses`` gives such a close frame the reason REASONS holds for
its code, so a browser's ``CloseEvent.reason`` says it as plainly as an error frame would.
A close that already has a reason (the bounds' 1008s, autobahn's 1002, 1007, 1009) keeps
its own, and a reply to the client's close frame echoes the client's.
"""
from channels_example.chat.identity import CLOSE_SIGNED_OUT
from channels_example.chat.protocol import CLOSE_REFUSED

REASONS = {
    CLOSE_REFUSED: "refused: the error frame before this close says why",
    CLOSE_SIGNED_OUT: "signed out: the user logged out, changed the password or was made inactive",
    1000: "this socket reached its lifetime (WEBSOCKET_LIFETIME): reconnect",
    1013: "try again later: the server could not queue this socket's frame",
}


class ReasonedCloses:
    """A mixin for autobahn's protocol: a close frame the server starts without a reason gets REASONS'."""

    def sendCloseFrame(self, code=None, reasonUtf8=None, isReply=False):
        if reasonUtf8 is None and not isReply and code in REASONS:
            reasonUtf8 = REASONS[code].encode("utf-8")
        super().sendCloseFrame(code=code, reasonUtf8=reasonUtf8, isReply=isReply)
