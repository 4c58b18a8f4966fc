"""Real servers for the end-to-end tests: each on a free loopback port, stopped by PID.

Every process writes its output to a log file under the test's temporary folder; a
server that dies while starting fails the test with the end of its log.
"""
import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """One started process: its PID, its port (if any) and its log."""

    def __init__(self, name, argv, log_path, env=None, port=None):
        self.name, self.argv, self.log_path, self.port = name, argv, log_path, port
        self.env = dict(os.environ, **(env or {}))
        self.process = None

    def start(self, ready_timeout=30):
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        if self.port is not None:
            self.wait_for_port(ready_timeout)
        return self

    @property
    def pid(self):
        return self.process.pid

    def wait_for_port(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("%s exited with %s while starting:\n%s" % (self.name, self.process.returncode, self.tail()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("%s did not listen on port %d within %ss:\n%s" % (self.name, self.port, timeout, self.tail()))

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signal the process by PID and wait for it; SIGKILL if it does not exit."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()

    def kill(self):
        self.stop(signal.SIGKILL)

    def read_log(self):
        self.log.flush()
        with open(self.log_path, "rb") as log:
            return log.read().decode("utf-8", "replace")

    def tail(self, lines=30):
        return "\n".join(self.read_log().splitlines()[-lines:])


def manage(*args):
    return [sys.executable, os.path.join(ROOT, "manage.py")] + list(args)
