"""Real servers for the end-to-end tests, started the way scripts/prod starts them.

Every process writes its output to a log file under the test's temporary folder and
is stopped by its PID; a server that dies while starting fails the test with the end
of its log.
"""
import os
import signal
import sys

from channels_example.topology import ROOT, Process, free_port  # noqa: F401 (re-exported)


def manage(*args):
    return [sys.executable, os.path.join(ROOT, "manage.py")] + list(args)


class Server(Process):
    """A Process whose environment is ours plus ``env``, logging to ``log_path``."""

    def __init__(self, name, argv, log_path, env=None, port=None):
        super().__init__(name, argv, env=dict(os.environ, **(env or {})), port=port, log_path=log_path)

    def kill(self):
        self.stop(signal.SIGKILL)
