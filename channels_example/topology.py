"""The production topology on one machine: redis-server, daphne and N runworker processes.

``scripts/prod`` runs this module; the end-to-end tests start the same commands with
the same environment through ``Process``, so what is tested is what is run.

    python -m channels_example.topology [--port 8000] [--workers 2]

Needs SECRET_KEY in the environment. Starts Debian's redis-server on a free loopback
port unless REDIS_URL is set (several comma-separated URLs shard the layer), prints
what it started and where, and stops everything it started, by PID, on Ctrl-C or
SIGTERM, or when any of its processes exits.
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlparse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)

# daphne's keepalive: a ping every 20 s, and a socket whose pings go unanswered for
# 30 s is closed (its disconnect then leaves the Group).
PING_INTERVAL, PING_TIMEOUT = 20, 30
LISTEN_BACKLOG = 1024


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_argv(port, data_dir):
    # Append-only file, synced every second: a restarted Redis still knows every
    # Group member and channel session, so open sockets keep working after it.
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
            "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"]


def daphne_argv(port):
    from channels_example.settings import WEBSOCKET_LIFETIME

    return [
        # A Twisted endpoint rather than --bind/--port, for its listen queue: Twisted's
        # default of 50 makes the kernel drop SYNs when 100 clients connect at once, and
        # they retry only after a second.
        os.path.join(BIN, "daphne"), "--endpoint", "tcp:port=%d:interface=127.0.0.1:backlog=%d" % (port, LISTEN_BACKLOG),
        # Sockets live as long as their Group membership (the layer's group_expiry).
        "--websocket_timeout", str(WEBSOCKET_LIFETIME),
        "--ping-interval", str(PING_INTERVAL), "--ping-timeout", str(PING_TIMEOUT),
        "channels_example.asgi:channel_layer",
    ]


def database(env):
    """Where the chat history is stored, for the start-up summary (no password)."""
    url = urlparse(env.get("DATABASE_URL", ""))
    if url.scheme:
        return "PostgreSQL %s:%s/%s" % (url.hostname, url.port or 5432, url.path.lstrip("/"))
    return "SQLite " + env.get("SQLITE_PATH", os.path.join(ROOT, "db.sqlite3"))


def worker_argv():
    return [sys.executable, os.path.join(ROOT, "manage.py"), "runworker"]


def production_env(redis_url, **extra):
    """The environment every daphne and runworker process gets; SECRET_KEY comes from ours."""
    env = dict(os.environ, REDIS_URL=redis_url, DEBUG="0", PYTHONUNBUFFERED="1")
    env.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
    env.update(extra)
    return env


class Process:
    """One started process, known by its PID, its port if it listens, and its log."""

    def __init__(self, name, argv, env=None, port=None, log_path=None):
        self.name, self.argv, self.env, self.port, self.log_path = name, argv, env, port, log_path
        self.process = None
        self._log = None

    def start(self, ready_timeout=30):
        output = None
        if self.log_path is not None:
            self._log = output = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        if self.port is not None:
            self._wait_for_port(ready_timeout)
        return self

    @property
    def pid(self):
        return self.process.pid

    def running(self):
        return self.process is not None and self.process.poll() is None

    def _wait_for_port(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError("%s exited with %s while starting%s" % (self.name, self.process.returncode, self._tail()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("%s did not listen on port %d within %ss%s" % (self.name, self.port, timeout, self._tail()))

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Signal the process by its PID and wait for it; SIGKILL if it does not exit in time."""
        if self.running():
            os.kill(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def read_log(self):
        if self.log_path is None:
            return ""
        with open(self.log_path, "rb") as log:
            return log.read().decode("utf-8", "replace")

    def _tail(self, lines=30):
        text = self.read_log()
        return (":\n" + "\n".join(text.splitlines()[-lines:])) if text else ""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 8000)))
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args(argv)
    if not os.environ.get("SECRET_KEY"):
        sys.exit("SECRET_KEY is not set. Set it to a long random string: every daphne and runworker "
                 "process must share it, or channel sessions written by one cannot be read by another.")

    started = []

    def stop_all(*_):
        for process in reversed(started):
            process.stop()
        sys.exit(0)

    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGTERM, stop_all)

    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        port = free_port()
        data_dir = tempfile.mkdtemp(prefix="channels_example-redis-")
        started.append(Process("redis-server", redis_argv(port, data_dir), port=port).start())
        redis_url = "redis://127.0.0.1:%d/0" % port
    env = production_env(redis_url)
    subprocess.run(worker_argv()[:2] + ["migrate", "--verbosity", "0"], env=env, check=True)
    started.append(Process("daphne", daphne_argv(options.port), env=env, port=options.port).start())
    for number in range(1, options.workers + 1):
        started.append(Process("runworker %d" % number, worker_argv(), env=env).start())

    print("\nchannels_example in production mode (Ctrl-C stops everything):")
    for process in started:
        where = "127.0.0.1:%d" % process.port if process.port else ""
        print("  %-12s pid %-7d %s" % (process.name, process.pid, where))
    print("  channel layer %s\n  history in   %s\n  chat at      http://127.0.0.1:%d/\n"
          % (redis_url, database(env), options.port), flush=True)

    pid, status = os.wait()
    dead = next((process for process in started if process.pid == pid), None)
    print("%s (pid %d) exited with status %d; stopping the rest." % (dead.name if dead else "a child", pid, status >> 8),
          flush=True)
    for process in reversed(started):
        process.stop()
    sys.exit(1)


if __name__ == "__main__":
    main()
