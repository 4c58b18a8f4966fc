"""The production topology for end-to-end tests: real redis-server, daphne and runworker.

Started with the same commands and environment as scripts/prod
(channels_example.topology); every process logs to the test's folder and is stopped
by its PID.
"""
import subprocess

import redis

from channels_example import topology
from channels_example.layers import DROPPED_KEY
from tests.servers import Process, free_port, manage

SECRET_KEY = "end-to-end-tests-only"


class Stack:
    def __init__(self, folder):
        self.folder = folder
        self.redis, self.daphnes, self.workers = [], [], []
        self.env = None

    def start(self, workers=2, daphnes=1, shards=1, database_url=None):
        """Start it all; ``database_url`` selects PostgreSQL (DATABASE_URL), else SQLite in the test's folder."""
        for number in range(shards):
            port = free_port()
            data = self.folder / ("redis-%d" % number)
            data.mkdir()
            self.redis.append(self._start("redis-%d" % number, topology.redis_argv(port, data), port=port))
        redis_url = ",".join("redis://127.0.0.1:%d/0" % server.port for server in self.redis)
        self.env = topology.production_env(
            redis_url, SECRET_KEY=SECRET_KEY, SQLITE_PATH=str(self.folder / "db.sqlite3"),
            DATABASE_URL=database_url or "",
        )
        subprocess.run(manage("migrate", "--verbosity", "0"), env=self.env, check=True)
        for number in range(daphnes):
            port = free_port()
            self.daphnes.append(self._start("daphne-%d" % number, topology.daphne_argv(port), port=port))
        for _ in range(workers):
            self.add_worker()
        return self

    def _start(self, name, argv, port=None):
        return Process(name, argv, env=self.env, port=port, log_path=self.folder / (name + ".log")).start()

    def add_worker(self):
        worker = self._start("worker-%d" % len(self.workers), topology.worker_argv())
        self.workers.append(worker)
        return worker

    @property
    def port(self):
        return self.daphnes[0].port

    def processes(self):
        return self.redis + self.daphnes + self.workers

    def logs(self, processes=None):
        return "\n".join(process.read_log() for process in (processes or self.workers + self.daphnes))

    def dropped(self):
        """Group-send drops counted by the layer on every shard."""
        return sum(int(redis.StrictRedis(port=server.port).get(DROPPED_KEY) or 0) for server in self.redis)

    def stop(self):
        for process in reversed(self.processes()):
            process.stop()
