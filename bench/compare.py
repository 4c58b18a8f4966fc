"""Run the standard scenarios against each way of serving the chat, and print one table.

    .venv/bin/python bench/compare.py [--targets runserver,stock,project,peer] [--scenarios S1,S2,S3,idle]

Targets, each started fresh for every scenario on free loopback ports and stopped by PID:

    runserver  manage.py runserver: the seed's in-memory layer, daphne and 4 worker threads in one process
    stock      redis-server + daphne 1.4.2 + 1 runworker on asgi_redis's own layer (bench/settings.py)
    project    redis-server + daphne 1.4.2 + 2 runworkers on the project's layer (scripts/prod)
    peer       redis-server + Channels 4 / daphne 4 / RedisPubSubChannelLayer (bench/peer, own venv)

The CPU figures count every server process of the target (Redis included), except in the
idle scenario, which measures daphne (or runserver) alone: its CPU and its memory per
connection. Each scenario's full report is kept as JSON in the output folder.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from channels_example import topology  # noqa: E402

PEER = os.path.join(ROOT, "bench", "peer")
# The scenarios' clients send up to 30 messages a second each: far over the per-socket rate
# limit a person never meets (CHAT_RATE_LIMIT, docs/security.md), so the benchmark turns it off.
UNLIMITED = {"CHAT_RATE_LIMIT": "off"}
PEER_VENV = os.path.join(PEER, ".venv")


def ensure_peer_venv():
    """The peer's own venv, from bench/peer/requirements.txt; never the project's."""
    if not os.path.exists(os.path.join(PEER_VENV, "bin", "daphne")):
        subprocess.run(["python3", "-m", "venv", PEER_VENV], check=True)
        subprocess.run([os.path.join(PEER_VENV, "bin", "python"), "-m", "pip", "install", "--quiet",
                        "-r", os.path.join(PEER, "requirements.txt")], check=True)


class Target:
    """One way of serving the chat: start() returns (port, daphne-like pid, all server pids)."""

    def __init__(self, name, folder):
        self.name, self.folder, self.processes = name, folder, []

    def _start(self, name, argv, env=None, port=None):
        process = topology.Process(name, argv, env=env, port=port, log_path=os.path.join(self.folder, name + ".log"))
        self.processes.append(process.start())
        return process

    def _redis(self):
        port = topology.free_port()
        self._start("redis", topology.redis_argv(port, self.folder), port=port)
        return "redis://127.0.0.1:%d/0" % port

    def start(self):
        port = topology.free_port()
        if self.name == "runserver":
            env = dict(os.environ, REDIS_URL="", SQLITE_PATH=os.path.join(self.folder, "db.sqlite3"), LOG_LEVEL="WARNING",
                       **UNLIMITED)
            subprocess.run([sys.executable, os.path.join(ROOT, "manage.py"), "migrate", "-v", "0"], env=env, check=True)
            front = self._start("runserver", [sys.executable, os.path.join(ROOT, "manage.py"), "runserver",
                                              "127.0.0.1:%d" % port, "--noreload"], env=env, port=port)
        elif self.name == "peer":
            ensure_peer_venv()
            env = dict(os.environ, REDIS_URL=self._redis(), DJANGO_SETTINGS_MODULE="peerchat.settings", PYTHONPATH=PEER)
            front = self._start("daphne", [os.path.join(PEER_VENV, "bin", "daphne"), "-b", "127.0.0.1", "-p", str(port),
                                           "-v", "0", "peerchat.asgi:application"], env=env, port=port)
        else:
            env = topology.production_env(
                self._redis(), SECRET_KEY="bench", LOG_LEVEL="WARNING", SQLITE_PATH=os.path.join(self.folder, "db.sqlite3"),
                **UNLIMITED,
                **({"DJANGO_SETTINGS_MODULE": "bench.settings", "REDIS_LAYER": "stock"} if self.name == "stock" else {}))
            subprocess.run([sys.executable, os.path.join(ROOT, "manage.py"), "migrate", "-v", "0"], env=env, check=True)
            front = self._add(topology.web(port, env, extra_args=["-v", "0"]))
            for number in range(1 if self.name == "stock" else 2):
                self._add(topology.worker(env, "worker-%d" % number, extra_args=["-v", "0"]))
        return port, front.pid, [process.pid for process in self.processes]

    def _add(self, process):
        process.log_path = os.path.join(self.folder, process.name + ".log")
        self.processes.append(process.start())
        return process

    def stop(self):
        for process in reversed(self.processes):
            process.stop()
        self.processes = []


def run_scenario(target_name, scenario, folder):
    target = Target(target_name, tempfile.mkdtemp(prefix="%s-%s-" % (target_name, scenario), dir=folder))
    try:
        port, front, pids = target.start()
        report_path = os.path.join(folder, "%s-%s.json" % (target_name, scenario))
        measured = [front] if scenario == "idle" else pids
        command = [sys.executable, os.path.join(ROOT, "bench", "chatbench.py"), "ws://127.0.0.1:%d" % port,
                   "--scenario", scenario, "--json", report_path]
        command += [argument for pid in measured for argument in ("--pid", str(pid))]
        subprocess.run(command, check=False, stdout=subprocess.DEVNULL)
        with open(report_path) as report:
            return json.load(report)
    finally:
        target.stop()


def summary(scenario, report):
    phases = report.get("phases", [])
    connect = report.get("connect", {})
    if scenario == "idle":
        idle = report.get("idle", {})
        return "%s connected; daphne CPU %.2f %%, %.1f KB per connection" % (
            connect.get("connected"), idle.get("server_cpu_percent") or 0, idle.get("server_rss_kb_per_connection") or 0)
    if scenario == "S2":
        passed = [phase for phase in phases if phase.get("passed")]
        if not passed:
            return "no step passed (%s)" % "; ".join(phases[0]["failures"]) if phases else "no result"
        best = max(passed, key=lambda phase: phase["delivered_per_s"])
        return "%.0f deliveries/s, p99 %.1f ms, %s µs CPU per delivery" % (
            best["delivered_per_s"], best["latency_ms"]["p99"], _us(best))
    phase = phases[0] if phases else {}
    latency = phase.get("latency_ms") or {}
    if scenario == "S3":
        return "%s of %s accepted (%s refused) in %.2f s; broadcast lost %s, p99 %s ms" % (
            connect.get("connected"), connect.get("clients"), connect.get("refused"), connect.get("seconds", 0),
            phase.get("lost"), _ms(latency.get("p99")))
    return "p50 %s ms, p99 %s ms, lost %s, %s µs CPU per delivery" % (
        _ms(latency.get("p50")), _ms(latency.get("p99")), phase.get("lost"), _us(phase))


def _ms(value):
    return "-" if value is None else "%.1f" % value


def _us(phase):
    value = phase.get("server_cpu_us_per_delivery")
    return "-" if value is None else "%.0f" % value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="runserver,stock,project,peer")
    parser.add_argument("--scenarios", default="S1,S2,S3,idle")
    parser.add_argument("--out", default=None, help="folder for the JSON reports (default: a new temporary one)")
    options = parser.parse_args()
    folder = options.out or tempfile.mkdtemp(prefix="chatbench-compare-")
    os.makedirs(folder, exist_ok=True)
    scenarios = options.scenarios.split(",")
    rows = []
    for target in options.targets.split(","):
        cells = []
        for scenario in scenarios:
            report = run_scenario(target, scenario, folder)
            cells.append(summary(scenario, report))
            print("%-9s %-4s %s" % (target, scenario, cells[-1]), file=sys.stderr, flush=True)
        rows.append("| %s | %s |" % (target, " | ".join(cells)))
    print("| target | %s |" % " | ".join(scenarios))
    print("|---|%s" % ("---|" * len(scenarios)))
    print("\n".join(rows))
    print("\nJSON reports in %s" % folder)


if __name__ == "__main__":
    main()
