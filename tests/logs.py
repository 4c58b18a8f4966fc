"""Checks on what the servers logged, a line at a time.

A check names the words of one log line, as the code writes them, in a regular expression:
never a bare substring, which a port, a time or a PID can hold by chance ("1013" is in
daphne's "Listening on endpoint tcp:port=41013").
"""
import re

# The first line of a Python traceback: "Traceback (most recent call last):", or Twisted's
# "Traceback (failure with no frames): ...".
TRACEBACK = r"^Traceback \("
# daphne closes a socket with 1013 when the layer refuses its frame, and says so in this line
# (daphne 1.4.2, ws_protocol.py, onMessage).
CLOSED_WITH_1013 = r"\bWebSocket force closed for \S+ due to receive backpressure$"


def lines(log, pattern):
    """The lines of ``log`` in which the regular expression ``pattern`` is found, in order."""
    return [line for line in log.splitlines() if re.search(pattern, line)]
