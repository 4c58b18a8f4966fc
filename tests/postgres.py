"""A throwaway PostgreSQL for the tests and the benchmark: Debian's server on a free loopback port.

Started from Debian's ``postgresql`` package (scripts/test installs it), in a new
temporary folder, as the unprivileged ``postgres`` user when we are root (PostgreSQL
refuses to run as root), with trust authentication on 127.0.0.1 only; stopped by its
PID, and its folder removed.
"""
import glob
import os
import shutil
import signal
import subprocess
import tempfile

import psycopg2

from channels_example.topology import Process, free_port

USER = "chat"


def _bin(name):
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/" + name), key=lambda path: int(path.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (scripts/test does it)")
    return found[-1]


class Postgres:
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
        subprocess.run([_bin("initdb"), "-D", data, "-U", USER, "--auth=trust", "-E", "UTF8", "--no-locale"],
                       check=True, stdout=subprocess.DEVNULL, **self._as)
        argv = [_bin("postgres"), "-D", data, "-p", str(self.port), "-h", "127.0.0.1", "-k", self.folder]
        if not self.durable:
            argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        self.server = _Postgres("postgres", argv, self._as, port=self.port,
                                log_path=os.path.join(self.folder, "postgres.log")).start()
        return self

    def create_database(self, name):
        """A new empty database; its DATABASE_URL."""
        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user=USER, dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute('CREATE DATABASE "%s"' % name)
        connection.close()
        return "postgres://%s@127.0.0.1:%d/%s" % (USER, self.port, name)

    def stop(self):
        if self.server is not None:
            # SIGINT is PostgreSQL's "fast" shutdown: it ends its sessions and exits at once.
            self.server.stop(signal.SIGINT)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


class _Postgres(Process):
    """A Process run as another user (Popen's user/group)."""

    def __init__(self, name, argv, run_as, **kwargs):
        super().__init__(name, argv, **kwargs)
        self._run_as = run_as

    def start(self, ready_timeout=30):
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                        start_new_session=True, **self._run_as)
        self._wait_for_port(ready_timeout)
        return self
