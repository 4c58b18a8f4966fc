"""Checks on what the servers logged, a line at a time.

A check names the words of one log line, as the code writes them, in a regular expression:
never a bare substring, which a port, a time or a PID can hold by chance ("1013" is in
daphne's "Listening on endpoint tcp:port=41013").
"""
import re

# The first line of a Python traceback: "Traceback (most recent call last):", or Twisted's
# "Traceback (failure with no frames): ...".
TRACEBACK = r"^Traceback \("
# A socket closed with 1013, in one of two lines: daphne's, when the layer refuses its frame
# (daphne 1.4.2, ws_protocol.py, onMessage), or the project's, when the socket has
# SOCKET_BACKLOG frames not yet handled (channels_example/interface/bounds.py).
REFUSED_BY_THE_LAYER = r"\bWebSocket force closed for \S+ due to receive backpressure$"
CLOSED_FOR_ITS_BACKLOG = (r" WARNING channels_example\.interface\.bounds closing daphne\.response\.\S+ from \S+ "
                          r"with 1013: \d+ frames waiting to be handled \(SOCKET_BACKLOG\)$")
CLOSED_WITH_1013 = "(%s|%s)" % (REFUSED_BY_THE_LAYER, CLOSED_FOR_ITS_BACKLOG)


def lines(log, pattern):
    """The lines of ``log`` in which the regular expression ``pattern`` is found, in order."""
    return [line for line in log.splitlines() if re.search(pattern, line)]
