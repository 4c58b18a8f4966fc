"""Checks on what the servers logged, a line at a time.

A check names the words of one log line, as the code writes them, in a regular expression:
never a bare substring, which a port, a time or a PID can hold by chance ("1013" is in
daphne's "Listening on endpoint tcp:port=41013").
"""
import re
import time

# A log line as every process writes it (settings.LOGGING, LOG_FORMAT=plain): time, level, logger,
# message. "2026-12-01 11:44:43,369 INFO channels_example.consumers 127.0.0.1:53412 joined ..."
LINE = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+ \S"
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


def not_in_the_format(log, besides=None):
    """The lines of ``log`` that are not log lines in the one format (LINE), but for blank ones and
    those ``besides`` matches (a command's own output, such as runserver's banner)."""
    return [line for line in log.splitlines()
            if line.strip() and not re.search(LINE, line) and not (besides and re.search(besides, line))]


def wait_for_line(read, pattern, timeout=30):
    """``read()``'s text once a line of it matches ``pattern``; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not lines(read(), pattern):
        assert time.monotonic() < deadline, "no line matching %r within %d s:\n%s" % (pattern, timeout, read()[-3000:])
        time.sleep(0.05)  # a process's log file: nothing to await but its next write
    return read()
