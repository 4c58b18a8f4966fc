"""The production topology on one machine, started process by process: for the tests and the benchmark.

The processes are the Procfile's, ``web`` (daphne), ``worker`` (runworker) and ``clock``
(runclock), the 1.x convention that Heroku, honcho and foreman run; ``scripts/prod`` runs it with honcho.
The tests and the benchmark need each process's PID (to kill one, to read its CPU), so
they start the same lines one by one through ``Process``, with the environment
``production_env`` gives them, and redis-server with scripts/redis.conf: what is
tested is what is run. ``Postgres`` is a throwaway PostgreSQL for the same purpose.
"""
import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import psycopg2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
REDIS_CONF = os.path.join(ROOT, "scripts", "redis.conf")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def procfile():
    """The Procfile's processes: ``{name: command line}``."""
    with open(os.path.join(ROOT, "Procfile"), encoding="utf-8") as lines:
        return dict(re.match(r"^([\w-]+):\s*(.+)$", line).groups() for line in lines if line.strip())


def redis_argv(port, data_dir, password=None):
    # A copy in the server's own folder: Sentinel makes Redis rewrite its config file.
    config = os.path.join(str(data_dir), "redis.conf")
    shutil.copyfile(REDIS_CONF, config)
    argv = ["redis-server", config, "--port", str(port), "--dir", str(data_dir)]
    # masterauth on every server, masters too: under Sentinel a master that comes back after
    # a failover is made a replica of the new one, and must authenticate to it.
    return argv + (["--requirepass", password, "--masterauth", password] if password else [])


# Redis Sentinel on one machine (scripts/prod --sentinel, the failover tests): a sentinel
# takes a master for down when it has not answered for SENTINEL_DOWN_AFTER_MS (1 s: long
# enough for a busy master never to be taken for dead on this machine, short enough that
# rooms are silent for a few seconds only); quorum 2 of 3 sentinels; a failover that stalls
# is tried again after SENTINEL_FAILOVER_TIMEOUT_MS.
SENTINEL_DOWN_AFTER_MS = 1000
SENTINEL_FAILOVER_TIMEOUT_MS = 5000
SENTINEL_QUORUM = 2


def replica_argv(port, data_dir, master_port, password=None):
    return redis_argv(port, data_dir, password) + ["--replicaof", "127.0.0.1", str(master_port)]


def sentinel_argv(port, data_dir, masters, password=None, sentinel_password=None):
    """redis-sentinel watching ``masters`` (``{service: master port}``); its config file is written
    to ``data_dir``, where the sentinel rewrites it as it learns."""
    lines = ["port %d" % port, "bind 127.0.0.1", "dir %s" % data_dir, "sentinel resolve-hostnames no"]
    for service, master_port in masters.items():
        lines += ["sentinel monitor %s 127.0.0.1 %d %d" % (service, master_port, SENTINEL_QUORUM),
                  "sentinel down-after-milliseconds %s %d" % (service, SENTINEL_DOWN_AFTER_MS),
                  "sentinel failover-timeout %s %d" % (service, SENTINEL_FAILOVER_TIMEOUT_MS),
                  "sentinel parallel-syncs %s 1" % service]
        if password:
            lines.append("sentinel auth-pass %s %s" % (service, password))
    if sentinel_password:
        lines.append("requirepass %s" % sentinel_password)
    config = os.path.join(str(data_dir), "sentinel-%d.conf" % port)
    with open(config, "w") as file:
        file.write("\n".join(lines) + "\n")
    return ["redis-sentinel", config]


def production_env(redis_url, **extra):
    """The environment every daphne and runworker process gets; SECRET_KEY comes from ours.

    This venv's bin comes first on PATH, so that the Procfile's ``daphne`` and ``python`` are its own.
    """
    env = dict(os.environ, REDIS_URL=redis_url, DEBUG="0", PYTHONUNBUFFERED="1")
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env.setdefault("ALLOWED_HOSTS", "127.0.0.1,localhost")
    env.update(extra)
    return env


def web(port, env, log_path=None, extra_args=()):
    """The Procfile's daphne, listening on ``port``."""
    return Process("daphne", _argv("web", extra_args), env=dict(env, PORT=str(port)), port=port, log_path=log_path)


def worker(env, name="runworker", log_path=None, extra_args=()):
    """One of the Procfile's runworker processes."""
    return Process(name, _argv("worker", extra_args), env=env, log_path=log_path)


def clock(env, log_path=None):
    """The Procfile's clock."""
    return Process("runclock", _argv("clock", ()), env=env, log_path=log_path)


def _argv(name, extra_args):
    # exec: the shell becomes the process, so its PID is daphne's or runworker's own.
    return ["/bin/sh", "-c", "exec " + procfile()[name] + "".join(" " + arg for arg in extra_args)]


class Process:
    """One started process, known by its PID, its port if it listens, and its log."""

    def __init__(self, name, argv, env=None, port=None, log_path=None, run_as=None):
        self.name, self.argv, self.env, self.port, self.log_path = name, argv, env, port, log_path
        self.run_as = run_as or {}  # Popen's user and group
        self.process = None
        self._log = None

    def start(self, ready_timeout=30):
        output = None
        if self.log_path is not None:
            self._log = output = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            self.argv, cwd=ROOT, env=self.env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            **self.run_as
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
        """Signal the process by its PID and wait for it; SIGKILL if it does not exit in time.

        The signal is sent again every second: Redis refuses a shutdown while it writes its
        first append-only file (a replica that has just synced), and does not retry by itself.
        """
        deadline = time.monotonic() + timeout
        while self.running():
            os.kill(self.process.pid, sig)
            try:
                self.process.wait(min(1, max(0.01, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                if time.monotonic() >= deadline:
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


POSTGRES_USER = "chat"


def _bin(name):
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/" + name), key=lambda path: int(path.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (scripts/test does it)")
    return found[-1]


class Postgres:
    """A throwaway PostgreSQL: Debian's server on a free loopback port (scripts/test installs it).

    In a new temporary folder, as the unprivileged ``postgres`` user when we are root
    (PostgreSQL refuses to run as root), with trust authentication on 127.0.0.1 only;
    stopped by its PID, and its folder removed.
    """

    def __init__(self, durable=False):
        # The tests need no durability; the benchmark measures with the defaults (fsync on).
        self.durable = durable
        self.port, self.folder, self.server = free_port(), None, None
        self._as = {"user": "postgres", "group": "postgres"} if os.getuid() == 0 else {}

    def start(self):
        self.folder = tempfile.mkdtemp(prefix="channels_example-postgres-")
        if self._as:
            shutil.chown(self.folder, **self._as)
        data = os.path.join(self.folder, "data")
        subprocess.run([_bin("initdb"), "-D", data, "-U", POSTGRES_USER, "--auth=trust", "-E", "UTF8", "--no-locale"],
                       check=True, stdout=subprocess.DEVNULL, **self._as)
        argv = [_bin("postgres"), "-D", data, "-p", str(self.port), "-h", "127.0.0.1", "-k", self.folder]
        if not self.durable:
            argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        self.server = Process("postgres", argv, port=self.port, log_path=os.path.join(self.folder, "postgres.log"),
                              run_as=self._as).start()
        return self

    def create_database(self, name):
        """A new empty database; its DATABASE_URL."""
        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=POSTGRES_USER, dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute('CREATE DATABASE "%s"' % name)
        connection.close()
        return "postgres://%s@127.0.0.1:%d/%s" % (POSTGRES_USER, self.port, name)

    def stop(self):
        if self.server is not None:
            # SIGINT is PostgreSQL's "fast" shutdown: it ends its sessions and exits at once.
            self.server.stop(signal.SIGINT)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)



def start_redis(folder, shards=1, sentinel=False, password=None):
    """Redis for scripts/prod: ``shards`` servers, or with ``sentinel`` per shard a master and a
    replica watched by three sentinels. ``(processes started, the environment naming them)``."""
    started, masters = [], {}

    def start(name, argv_for):
        port, data = free_port(), os.path.join(folder, name)
        os.makedirs(data)
        process = Process(name, argv_for(port, data), port=port, log_path=os.path.join(data, "log"))
        started.append(process.start())
        return process

    for number in range(shards):
        master = start("shard%d" % number, lambda port, data: redis_argv(port, data, password))
        masters["shard%d" % number] = master.port
        if sentinel:
            start("shard%d-replica" % number, lambda port, data: replica_argv(port, data, master.port, password))
    if not sentinel:
        # The user "default" named: redis-cli 7 takes "redis://:PASSWORD@" for the user "" (WRONGPASS);
        # redis-py 2.10.6 sends the password alone, which is the same user.
        auth = "default:%s@" % password if password else ""
        return started, {"REDIS_URL": ",".join("redis://%s127.0.0.1:%d/0" % (auth, port) for port in masters.values())}
    sentinels = [start("sentinel-%d" % number, lambda port, data: sentinel_argv(port, data, masters, password))
                 for number in range(3)]
    return started, {"REDIS_SENTINELS": ",".join("127.0.0.1:%d" % process.port for process in sentinels),
                     "REDIS_SERVICES": ",".join(masters), "REDIS_PASSWORD": password or ""}


def unreachable_redis(environ=os.environ, timeout=2):
    """What the environment names (REDIS_URL's servers, or REDIS_SENTINELS) and does not answer:
    ``[(name as shown, without its password; why)]``."""
    from urllib.parse import urlsplit

    import redis

    names = [url.strip() for url in environ.get("REDIS_URL", "").split(",") if url.strip()]
    sentinels = [address.strip() for address in environ.get("REDIS_SENTINELS", "").split(",") if address.strip()]
    failed = []
    for url in names:
        parts = urlsplit(url)
        shown = parts._replace(netloc=parts.hostname + (":%d" % parts.port if parts.port else "")).geturl()
        try:
            redis.StrictRedis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout).ping()
        except (redis.RedisError, OSError, ValueError) as error:
            failed.append(("REDIS_URL " + shown, str(error).rstrip(".")))
    for address in sentinels:
        host, _, port = address.rpartition(":")
        try:
            redis.StrictRedis(host=host, port=int(port), socket_timeout=timeout, socket_connect_timeout=timeout,
                              password=environ.get("REDIS_SENTINEL_PASSWORD") or None).ping()
        except (redis.RedisError, OSError, ValueError) as error:
            failed.append(("REDIS_SENTINELS " + address, str(error).rstrip(".")))
    return failed


def main(argv=None):
    """``python -m channels_example.topology redis [--sentinel] [--shards N]``: start Redis as
    scripts/prod wants it, print the environment that names it on one line, and stop it all,
    by PID, on SIGTERM or SIGINT, removing its folder.

    ``python -m channels_example.topology ping``: exit 1, saying which and why, when a Redis the
    environment names does not answer (scripts/run and scripts/prod, before they start)."""
    import argparse
    import secrets

    parser = argparse.ArgumentParser(prog="python -m channels_example.topology")
    parser.add_argument("what", choices=["redis", "ping"])
    parser.add_argument("--sentinel", action="store_true")
    parser.add_argument("--shards", type=int, default=1)
    options = parser.parse_args(argv)
    if options.what == "ping":
        failed = unreachable_redis()
        for name, why in failed:
            print("==> %s does not answer: %s. Start it, or unset REDIS_URL and REDIS_SENTINELS to run "
                  "without Redis (scripts/run: the in-memory layer)." % (name, why), file=sys.stderr)
        sys.exit(1 if failed else 0)
    folder = tempfile.mkdtemp(prefix="channels_example-redis-")
    started = []

    def stop(*_):
        for process in reversed(started):
            process.stop()
        shutil.rmtree(folder, ignore_errors=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        processes, env = start_redis(folder, options.shards, options.sentinel, secrets.token_hex(16))
        started += processes
    except BaseException:
        stop()
        raise
    print(" ".join("%s=%s" % item for item in env.items()), flush=True)
    for process in started:
        print("  %-18s pid %-7d 127.0.0.1:%d" % (process.name, process.pid, process.port), file=sys.stderr, flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
