"""Run the standard scenarios against each way of serving the chat, and print one table.

    .venv/bin/python bench/compare.py [--targets project,peer] [--scenarios S1,cpu,S2,S3,idle]
                                      [--redis-delay-ms 0.5] [--workers 2]

Targets, each started fresh for every scenario on free loopback ports and stopped by PID:

    runserver    manage.py runserver: the seed's in-memory layer, daphne and 4 worker threads in one process
    project      redis-server + daphne 1.4.2 + 2 runworkers (--workers) + the clock on the project's layer
                 (scripts/prod), every feature on: history, presence, ordering, accounts, metrics (the rate
                 limit off, below)
    stock        the same on asgi_redis's own layer, unchanged (REDIS_LAYER=stock)
    peer         redis-server + Channels 4 + RedisPubSubChannelLayer under uvicorn with 2 worker
                 processes, uvloop and httptools (bench/peer, its own venv): the strongest Channels 4
                 setup on 2 cores, using both as daphne + 2 runworkers do
    peer-daphne  the same Channels 4 project under one daphne 4 process

The CPU figures count every server process of the target (Redis included; the delay proxy
not), except in the idle scenario, which measures the web server alone (daphne, runserver,
or uvicorn's processes): its CPU and its memory per connection. With ``--redis-delay-ms``
every target reaches Redis through bench/redis_delay.py, which adds that delay each way
(Redis on another host) and counts round trips: each phase reports them per message sent.
Each scenario's full report is kept as JSON in the output folder.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from channels_example import topology  # noqa: E402

PEER = os.path.join(ROOT, "bench", "peer")
# The scenarios' clients send up to 30 messages a second each: far over the per-socket rate
# limit a person never meets (CHAT_RATE_LIMIT, docs/security.md), so the benchmark turns it off.
UNLIMITED = {"CHAT_RATE_LIMIT": "off"}
PEER_VENV = os.path.join(PEER, ".venv")
PEER_STAMP = os.path.join(PEER_VENV, "requirements.txt")


def ensure_peer_venv():
    """The peer's own venv, from bench/peer/requirements.txt (again when it changes); never the project's."""
    with open(os.path.join(PEER, "requirements.txt")) as wanted:
        requirements = wanted.read()
    if os.path.exists(PEER_STAMP):
        with open(PEER_STAMP) as installed:
            if installed.read() == requirements:
                return
    if not os.path.exists(os.path.join(PEER_VENV, "bin", "python")):
        subprocess.run(["python3", "-m", "venv", PEER_VENV], check=True)
    subprocess.run([os.path.join(PEER_VENV, "bin", "python"), "-m", "pip", "install", "--quiet",
                    "-r", os.path.join(PEER, "requirements.txt")], check=True)
    with open(PEER_STAMP, "w") as installed:
        installed.write(requirements)


def descendants(pid):
    """The PIDs of a process's children, their children, and so on."""
    found = []
    for task in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/children" % (pid, task)) as children:
            for child in children.read().split():
                found += [int(child)] + descendants(int(child))
    return found


class Target:
    """One way of serving the chat: start() returns (port, daphne-like pid, all server pids)."""

    def __init__(self, name, folder, redis_delay_ms=None, env=None, workers=2):
        self.name, self.folder, self.processes = name, folder, []
        self.redis_delay_ms = redis_delay_ms
        self.workers = workers  # the project's runworker processes
        self.env = env or {}  # more for the project's processes (runserver, stock, project)
        self.redis_stats = None  # the delay proxy's stats port
        self.measured = []  # the server processes to measure, when not the started ones

    def _start(self, name, argv, env=None, port=None):
        process = topology.Process(name, argv, env=env, port=port, log_path=os.path.join(self.folder, name + ".log"))
        self.processes.append(process.start())
        return process

    def _redis(self):
        port = topology.free_port()
        redis = self._start("redis", topology.redis_argv(port, self.folder), port=port)
        self.measured.append(redis.pid)
        if self.redis_delay_ms is None:
            return "redis://127.0.0.1:%d/0" % port
        proxy_port, self.redis_stats = topology.free_port(), topology.free_port()
        self._start("redis-delay", [sys.executable, os.path.join(ROOT, "bench", "redis_delay.py"),
                                    "--listen", str(proxy_port), "--to", "127.0.0.1:%d" % port,
                                    "--delay-ms", str(self.redis_delay_ms), "--stats", str(self.redis_stats)],
                    port=proxy_port)
        return "redis://127.0.0.1:%d/0" % proxy_port

    def start(self):
        """Start the target: ``(port, the web server's PIDs, every server PID to measure)``."""
        port = topology.free_port()
        if self.name == "runserver":
            env = dict(os.environ, REDIS_URL="", SQLITE_PATH=os.path.join(self.folder, "db.sqlite3"), LOG_LEVEL="WARNING",
                       **dict(UNLIMITED, **self.env))
            subprocess.run([sys.executable, os.path.join(ROOT, "manage.py"), "migrate", "-v", "0"], env=env, check=True)
            front = self._start("runserver", [sys.executable, os.path.join(ROOT, "manage.py"), "runserver",
                                              "127.0.0.1:%d" % port, "--noreload"], env=env, port=port)
        elif self.name == "peer":
            ensure_peer_venv()
            env = dict(os.environ, REDIS_URL=self._redis(), DJANGO_SETTINGS_MODULE="peerchat.settings", PYTHONPATH=PEER)
            front = self._start("uvicorn", [os.path.join(PEER_VENV, "bin", "uvicorn"), "--workers", "2", "--loop", "uvloop",
                                            "--http", "httptools", "--ws", "websockets", "--host", "127.0.0.1",
                                            "--port", str(port), "--log-level", "warning", "peerchat.asgi:application"],
                                env=env, port=port)
            self._wait_for_workers(front.pid, 2)
            fronts = [front.pid] + descendants(front.pid)
            return port, fronts, self.measured + fronts
        elif self.name == "peer-daphne":
            ensure_peer_venv()
            env = dict(os.environ, REDIS_URL=self._redis(), DJANGO_SETTINGS_MODULE="peerchat.settings", PYTHONPATH=PEER)
            front = self._start("daphne", [os.path.join(PEER_VENV, "bin", "daphne"), "-b", "127.0.0.1", "-p", str(port),
                                           "-v", "0", "peerchat.asgi:application"], env=env, port=port)
        else:
            env = topology.production_env(
                self._redis(), SECRET_KEY="bench", LOG_LEVEL="WARNING", SQLITE_PATH=os.path.join(self.folder, "db.sqlite3"),
                **dict(UNLIMITED, **self.env),
                **({"REDIS_LAYER": "stock"} if self.name == "stock" else {}))
            subprocess.run([sys.executable, os.path.join(ROOT, "manage.py"), "migrate", "-v", "0"], env=env, check=True)
            front = self._add(topology.web(port, env, extra_args=["-v", "0"]))
            for number in range(self.workers):
                self._add(topology.worker(env, "worker-%d" % number, extra_args=["-v", "0"]))
            self._add(topology.clock(env))
            self._wait_for_heartbeats(env["REDIS_URL"], self.workers)
        servers = [process.pid for process in self.processes if process.name != "redis-delay"]
        return port, [front.pid], servers

    @staticmethod
    def _wait_for_heartbeats(redis_url, count, timeout=60):
        """Until ``count`` workers are ready (their heartbeats, channels_example/chat/processes.py):
        daphne listens long before the workers have loaded Django, and a scenario started then
        would time the workers' start-up (S3's connecting, above all) rather than the chat."""
        client = redis.StrictRedis.from_url(redis_url)
        deadline = time.monotonic() + timeout
        while client.zcard("channels_example:workers") < count:
            if time.monotonic() > deadline:
                raise RuntimeError("fewer than %d workers consumed within %d s" % (count, timeout))
            time.sleep(0.1)

    @staticmethod
    def _wait_for_workers(pid, count, timeout=30):
        """Until uvicorn's supervisor has ``count`` worker processes, each listening (they share its socket)."""
        deadline = time.monotonic() + timeout
        while len([child for child in descendants(pid) if _is_python(child)]) < count:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn started fewer than %d workers in %d s" % (count, timeout))
            time.sleep(0.1)

    def _add(self, process):
        process.log_path = os.path.join(self.folder, process.name + ".log")
        self.processes.append(process.start())
        return process

    def stop(self):
        for process in reversed(self.processes):
            process.stop()
        self.processes = []


def _is_python(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as cmdline:
            return b"python" in cmdline.read().split(b"\0")[0]
    except FileNotFoundError:
        return False


def run_scenario(target_name, scenario, folder, redis_delay_ms=None, workers=2):
    target = Target(target_name, tempfile.mkdtemp(prefix="%s-%s-" % (target_name, scenario), dir=folder),
                    redis_delay_ms, workers=workers)
    try:
        port, fronts, pids = target.start()
        report_path = os.path.join(folder, "%s-%s.json" % (target_name, scenario))
        measured = fronts if scenario == "idle" else pids
        command = [sys.executable, os.path.join(ROOT, "bench", "chatbench.py"), "ws://127.0.0.1:%d" % port,
                   "--scenario", scenario, "--json", report_path]
        command += [argument for pid in measured for argument in ("--pid", str(pid))]
        if target.redis_stats:
            command += ["--redis-stats", str(target.redis_stats)]
        subprocess.run(command, check=False, stdout=subprocess.DEVNULL)
        with open(report_path) as report:
            return json.load(report)
    finally:
        target.stop()


def figures(scenario, report):
    """The scenario's headline numbers, for the table and the ratios."""
    phases = report.get("phases", [])
    connect = report.get("connect", {})
    if scenario == "idle":
        idle = report.get("idle", {})
        return {"connected": connect.get("connected"), "cpu_percent": idle.get("server_cpu_percent"),
                "kb_per_connection": idle.get("server_rss_kb_per_connection")}
    if scenario == "S2":
        passed = [phase for phase in phases if phase.get("passed")]
        failed = [phase for phase in phases if not phase.get("passed")]
        best = max(passed, key=lambda phase: phase["offered_per_s"]) if passed else None
        return {"best_sends_per_s": best and best["offered_per_s"],
                "delivered_per_s": best and best["delivered_per_s"],
                "p99_ms": best and best["latency_ms"]["p99"], "us_per_delivery": best and best.get("server_cpu_us_per_delivery"),
                "next_failed": failed[0]["offered_per_s"] if failed else None,
                "why": "; ".join(failed[0]["failures"]) if failed else None}
    phase = phases[0] if phases else {}
    latency = phase.get("latency_ms") or {}
    found = {"p50_ms": latency.get("p50"), "p99_ms": latency.get("p99"), "lost": phase.get("lost"),
             "us_per_delivery": phase.get("server_cpu_us_per_delivery"),
             "round_trips_per_message": (phase.get("redis") or {}).get("per_message")}
    if scenario == "S3":
        found.update(connected=connect.get("connected"), clients=connect.get("clients"), refused=connect.get("refused"),
                     connect_s=connect.get("seconds"),
                     ms_per_connect=1000 * connect["server_cpu_s"] / connect["connected"]
                     if connect.get("server_cpu_s") is not None and connect.get("connected") else None)
    return found


def summary(scenario, found):
    if scenario == "idle":
        return "%s connected; web server CPU %s %%, %s KB per connection" % (
            found["connected"], _num(found["cpu_percent"], "%.2f"), _num(found["kb_per_connection"], "%.1f"))
    if scenario == "S2":
        if found["best_sends_per_s"] is None:
            return "no step passed (%s)" % found["why"]
        text = "%.0f sends/s (%.0f deliveries/s), p99 %s ms, %s µs CPU per delivery" % (
            found["best_sends_per_s"], found["delivered_per_s"], _num(found["p99_ms"], "%.1f"),
            _num(found["us_per_delivery"]))
        if found["next_failed"]:
            text += "; %.0f failed: %s" % (found["next_failed"], found["why"])
        return text
    trips = found.get("round_trips_per_message")
    trips = "" if trips is None else ", %.1f Redis round trips per message" % trips
    if scenario == "S3":
        return "%s of %s accepted (%s refused) in %s s, %s ms server CPU per connect; broadcast lost %s, p99 %s ms" % (
            found["connected"], found["clients"], found["refused"], _num(found["connect_s"], "%.2f"),
            _num(found["ms_per_connect"], "%.2f"), found["lost"], _num(found["p99_ms"], "%.1f"))
    return "p50 %s ms, p99 %s ms, lost %s, %s µs CPU per delivery%s" % (
        _num(found["p50_ms"], "%.1f"), _num(found["p99_ms"], "%.1f"), found["lost"], _num(found["us_per_delivery"]), trips)


# (scenario, figure, what it is): the ratios printed for "project / peer" (lower is better but for S2).
RATIOS = [("S1", "p50_ms", "S1 p50"), ("S1", "p99_ms", "S1 p99"), ("cpu", "us_per_delivery", "CPU per delivery at 2,000/s"),
          ("S2", "best_sends_per_s", "S2 best step (higher is better)"), ("S3", "connect_s", "S3 connect time"),
          ("S1", "round_trips_per_message", "Redis round trips per message (S1)")]


def _num(value, pattern="%.0f"):
    return "-" if value is None else pattern % value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="project,peer")
    parser.add_argument("--scenarios", default="S1,cpu,S2,S3,idle")
    parser.add_argument("--redis-delay-ms", type=float, default=None,
                        help="reach Redis through bench/redis_delay.py, this much added each way")
    parser.add_argument("--workers", type=int, default=2, help="the project's runworker processes (default 2)")
    parser.add_argument("--out", default=None, help="folder for the JSON reports (default: a new temporary one)")
    options = parser.parse_args()
    folder = options.out or tempfile.mkdtemp(prefix="chatbench-compare-")
    os.makedirs(folder, exist_ok=True)
    scenarios = options.scenarios.split(",")
    targets = options.targets.split(",")
    found = {}
    for target in targets:
        for scenario in scenarios:
            report = run_scenario(target, scenario, folder, options.redis_delay_ms, options.workers)
            found[target, scenario] = figures(scenario, report)
            print("%-11s %-4s %s" % (target, scenario, summary(scenario, found[target, scenario])), file=sys.stderr,
                  flush=True)
    print("%s, `bench/compare.py %s`%s" % (
        time.strftime("%Y-%m-%d"), " ".join(sys.argv[1:]),
        "" if options.redis_delay_ms is None else ", Redis %.2f ms away each way" % options.redis_delay_ms))
    print()
    print("| target | %s |" % " | ".join(scenarios))
    print("|---|%s" % ("---|" * len(scenarios)))
    for target in targets:
        print("| %s | %s |" % (target, " | ".join(summary(scenario, found[target, scenario]) for scenario in scenarios)))
    if "project" in targets and "peer" in targets:
        print()
        print("| project / peer | ratio |")
        print("|---|---|")
        for scenario, name, label in RATIOS:
            ours, theirs = (found.get((target, scenario), {}).get(name) for target in ("project", "peer"))
            if ours is not None and theirs:
                print("| %s | %.2f× (%s / %s) |" % (label, ours / theirs, _num(ours, "%.4g"), _num(theirs, "%.4g")))
    print("\nJSON reports in %s" % folder)


if __name__ == "__main__":
    main()
