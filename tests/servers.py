"""Real servers for the end-to-end tests, started the way scripts/prod starts them (channels_example.topology).

Every process writes its output to a log file under the test's temporary folder and
is stopped by its PID; a server that dies while starting fails the test with the end
of its log.
"""
import os
import sys

from channels_example.topology import ROOT, Process, free_port  # noqa: F401 (re-exported)


# The load-shaped tests send far faster than a person types: they run without the
# per-socket rate limit, as the benchmark does; the bounds tests turn it back on.
LOAD = {"CHAT_RATE_LIMIT": "off"}


def manage(*args):
    return [sys.executable, os.path.join(ROOT, "manage.py")] + list(args)
