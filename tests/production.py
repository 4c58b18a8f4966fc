"""The production topology for end-to-end tests: real redis-server, daphne and runworker.

Started with the Procfile's commands and scripts/prod's environment
(channels_example.topology); every process logs to the test's folder and is stopped
by its PID.
"""
import sqlite3
import subprocess
import time

import dj_database_url
import psycopg2
import redis

from channels_example import topology
from channels_example.chat import processes
from channels_example.layers import RedisChannelLayer, RedisSentinelChannelLayer
from tests.servers import LOAD, Process, free_port, manage

SECRET_KEY = "end-to-end-tests-only"


class Stack:
    def __init__(self, folder):
        self.folder = folder
        self.redis, self.daphnes, self.workers, self.clocks = [], [], [], []
        self.env = None

    def start(self, workers=2, daphnes=1, shards=1, database_url=None, daphne_args=(), sentinel=False, **env):
        """Start it all; ``database_url`` selects PostgreSQL (DATABASE_URL), else SQLite in the test's folder.

        ``sentinel``: each shard is a Sentinel service ("shard0", ...) of a master and a replica,
        watched by three sentinels; the processes reach Redis through them (REDIS_SENTINELS).

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
        if sentinel:
            env.update(self._start_sentinels(), REDIS_URL=None)
        self.env = {key: value for key, value in topology.production_env(self.redis_url, **env).items()
                    if value is not None}
        subprocess.run(manage("migrate", "--verbosity", "0"), env=self.env, check=True)
        subprocess.run(manage("collectstatic", "--noinput", "--verbosity", "0"), env=self.env, check=True)
        for number in range(daphnes):
            self.daphnes.append(self._start(topology.web(free_port(), self.env, extra_args=daphne_args),
                                            "daphne-%d" % number))
        for _ in range(workers):
            self.add_worker()
        self.clocks.append(self._start(topology.clock(self.env), "clock"))
        self.wait_for_workers()
        return self

    def layer(self):
        """A layer of our own on the stack's Redis, as its processes have theirs."""
        if getattr(self, "sentinels", None):
            return RedisSentinelChannelLayer(hosts=[("127.0.0.1", sentinel.port) for sentinel in self.sentinels],
                                             services=list(self.services))
        return RedisChannelLayer(hosts=self.redis_url.split(","))

    def wait_for_workers(self, timeout=30):
        """Until every worker is ready (its heartbeat, channels_example.chat.processes, starts when channels
        says so): a test's first request then meets a worker, not a queue."""
        layer, deadline = self.layer(), time.monotonic() + timeout
        registry = layer.connection(layer.consistent_hash(processes.WORKERS))
        while registry.zcard(processes.WORKERS) < len(self.workers):
            assert time.monotonic() < deadline, "workers ready: %d of %d" % (registry.zcard(processes.WORKERS),
                                                                              len(self.workers))
            time.sleep(0.05)  # in another process: nothing to await from here

    def _start_sentinels(self):
        """A replica of each shard's master and three sentinels; the environment that names them."""
        self.services = {"shard%d" % number: server for number, server in enumerate(self.redis)}
        self.replicas = []
        for service, master in self.services.items():
            port, data = free_port(), self.folder / ("%s-replica" % service)
            data.mkdir()
            self.replicas.append(self._start(Process(
                "%s-replica" % service, topology.replica_argv(port, data, master.port), port=port)))
        self.sentinels = []
        for number in range(3):
            port, data = free_port(), self.folder / ("sentinel-%d" % number)
            data.mkdir()
            masters = {service: master.port for service, master in self.services.items()}
            self.sentinels.append(self._start(Process(
                "sentinel-%d" % number, topology.sentinel_argv(port, data, masters), port=port)))
        self.wait_for_sentinels()
        return {"REDIS_SENTINELS": ",".join("127.0.0.1:%d" % sentinel.port for sentinel in self.sentinels),
                "REDIS_SERVICES": ",".join(self.services)}

    def wait_for_sentinels(self, timeout=30):
        """Until every sentinel knows every service's replica and the two other sentinels."""
        deadline = time.monotonic() + timeout
        for sentinel in self.sentinels:
            client = redis.StrictRedis(port=sentinel.port)
            for service in self.services:
                while not (len(client.execute_command("SENTINEL", "REPLICAS", service)) >= 1
                           and len(client.execute_command("SENTINEL", "SENTINELS", service)) >= 2):
                    assert time.monotonic() < deadline, "sentinel %d does not know %s yet" % (sentinel.port, service)
                    time.sleep(0.1)  # sentinels learn by gossip, every second or so

    def master_port(self, service):
        """Where the sentinels say the service's master is now."""
        host, port = redis.StrictRedis(port=self.sentinels[0].port).execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", service)
        return int(port)

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
        return (self.redis + getattr(self, "replicas", []) + getattr(self, "sentinels", []) + self.daphnes
                + self.workers + self.clocks)

    def logs(self, processes=None):
        return "\n".join(process.read_log() for process in (processes or self.workers + self.daphnes + self.clocks))

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
        return self.layer().dropped_total()

    def stop(self):
        for process in reversed(self.processes()):
            process.stop()
