"""The production topology for end-to-end tests: real redis-server, daphne and runworker.

Started with the Procfile's commands and scripts/prod's environment
(channels_example.topology); every process logs to the test's folder and is stopped
by its PID.
"""
import sqlite3
import subprocess

import dj_database_url
import psycopg2

from channels_example import topology
from channels_example.layers import RedisChannelLayer
from tests.servers import LOAD, Process, free_port, manage

SECRET_KEY = "end-to-end-tests-only"


class Stack:
    def __init__(self, folder):
        self.folder = folder
        self.redis, self.daphnes, self.workers = [], [], []
        self.env = None

    def start(self, workers=2, daphnes=1, shards=1, database_url=None, daphne_args=(), **env):
        """Start it all; ``database_url`` selects PostgreSQL (DATABASE_URL), else SQLite in the test's folder.

        ``env`` is added to every process's environment (a value of None removes a variable);
        without it the load-shaped tests run without the rate limit (tests.servers.LOAD).
        """
        for number in range(shards):
            port = free_port()
            data = self.folder / ("redis-%d" % number)
            data.mkdir()
            self.redis.append(self._start(Process("redis-%d" % number, topology.redis_argv(port, data), port=port)))
        env = dict(LOAD, SECRET_KEY=SECRET_KEY, SQLITE_PATH=str(self.folder / "db.sqlite3"),
                   DATABASE_URL=database_url or "", **env)
        self.env = {key: value for key, value in topology.production_env(self.redis_url, **env).items()
                    if value is not None}
        subprocess.run(manage("migrate", "--verbosity", "0"), env=self.env, check=True)
        for number in range(daphnes):
            self.daphnes.append(self._start(topology.web(free_port(), self.env, extra_args=daphne_args),
                                            "daphne-%d" % number))
        for _ in range(workers):
            self.add_worker()
        return self

    def _start(self, process, name=None):
        process.name = name or process.name
        process.env = process.env or self.env
        process.log_path = self.folder / (process.name + ".log")
        return process.start()

    def add_worker(self):
        worker = self._start(topology.worker(self.env), "worker-%d" % len(self.workers))
        self.workers.append(worker)
        return worker

    @property
    def redis_url(self):
        return ",".join("redis://127.0.0.1:%d/0" % server.port for server in self.redis)

    @property
    def port(self):
        return self.daphnes[0].port

    def processes(self):
        return self.redis + self.daphnes + self.workers

    def logs(self, processes=None):
        return "\n".join(process.read_log() for process in (processes or self.workers + self.daphnes))

    def stored_seqs(self, room):
        """The seqs of ``room``'s messages in the stack's database, oldest first."""
        query = "SELECT seq FROM channels_example_message WHERE room = %s ORDER BY seq"
        if self.env["DATABASE_URL"]:
            config = dj_database_url.parse(self.env["DATABASE_URL"])
            connection = psycopg2.connect(host=config["HOST"], port=config["PORT"], user=config["USER"],
                                          dbname=config["NAME"])
        else:
            connection = sqlite3.connect(self.env["SQLITE_PATH"], timeout=20)
            query = query.replace("%s", "?")
        try:
            cursor = connection.cursor()
            cursor.execute(query, (room,))
            return [seq for seq, in cursor.fetchall()]
        finally:
            connection.close()

    def dropped(self):
        """Group-send drops counted by the layers of every process, on every shard."""
        return RedisChannelLayer(hosts=self.redis_url.split(",")).dropped_total()

    def stop(self):
        for process in reversed(self.processes()):
            process.stop()
