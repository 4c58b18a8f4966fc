"""What history and presence (docs/history.md) cost per message, measured two ways.

1. Each part alone, against a real redis-server and each database (SQLite, and a
   throwaway PostgreSQL with fsync on): a plain Group send of a chat frame (what a
   message cost before history), ``Room.publish`` (number it, keep it in the
   recent list, send it to the Group and to chat.history), ``history.store`` (the
   database write, on a worker but off the delivery path: one message per transaction,
   and 100, as the timed store takes them), a presence join plus leave,
   and the daphne-side gate per frame.
2. End to end on the production topology (redis-server + daphne + 2 runworkers), on
   each database: one client sends a burst, another member receives it; the burst's
   duration and the workers' CPU time per message, storing included.

    .venv/bin/python bench/history_cost.py [--messages 2000] [--burst 500] [--runs 3] [--json]

With ``--server``, only the bursts, against a server already running (scripts/run or
scripts/prod started with CHAT_RATE_LIMIT=off), on its database, with the CPU time of the
processes given with ``--pid``, if any (bench/ordering_cost.py's bursts).

    .venv/bin/python bench/history_cost.py --server http://127.0.0.1:8000 [--pid PID] [--burst 100]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "channels_example.settings")

from channels_example import topology  # noqa: E402
from ordering_cost import HEADER, bursts, summary, table_row  # noqa: E402


def parts_alone(count):
    """Run in a child process whose environment names Redis and the database; prints µs per operation as JSON."""
    import django

    django.setup()
    from channels import DEFAULT_CHANNEL_LAYER, Group, channel_layers
    from django.conf import settings
    from django.core.management import call_command

    from channels_example.chat import history, identity, presence, protocol
    from channels_example.chat.rooms import Room
    from channels_example.layers import gate as gates

    call_command("migrate", verbosity=0)
    layer = channel_layers[DEFAULT_CHANNEL_LAYER]
    room = Room("bench")
    members = ["daphne.response.bench!%d" % number for number in range(10)]
    for member in members:
        room.group.add(member)

    def per_op(run, repeat=count):
        started = time.perf_counter()
        for number in range(repeat):
            run(number)
        return (time.perf_counter() - started) / repeat * 1e6

    def drain():
        layer.flush()
        for member in members:
            room.group.add(member)

    def guest(handle):
        return identity.Speaker(handle, signed_in=False, staff=False, person="socket:" + handle)

    message = protocol.chat_message("bench", guest("ann"), "x" * 40)
    results = {"group send (before history)": per_op(
        lambda n: Group(room.group_name).send(protocol.message_frame(message, n), immediately=True))}
    drain()
    results["Room.publish"] = per_op(lambda n: room.publish(message))
    stored = []
    while True:
        channel, content = layer.receive([history.STORE_CHANNEL])
        if channel is None:
            break
        stored.append(content)
    half = len(stored) // 2
    results["history.store, one at a time"] = per_op(lambda n: history.store(stored[n]), half)
    batches = [stored[start:start + history.STORE_BATCH] for start in range(half, len(stored), history.STORE_BATCH)]
    results["history.store, %d at a time" % len(batches[0])] = per_op(
        lambda n: history.store(*batches[n]), len(batches)) * len(batches) / (len(stored) - half)
    drain()
    results["presence join + leave"] = per_op(
        lambda n: (presence.join(room, "daphne.response.bench!p%d" % n, guest("p%d" % n)),
                   presence.leave(room, "daphne.response.bench!p%d" % n)))
    gate = gates.JoinGate(settings.GATE_TRANSPORT["gate_streams"])
    gate.admit("daphne.response.bench!g", gates.snapshot(layer, {"text": "welcome"}, presence.STREAM, 0))
    gate.admit("daphne.response.bench!g", gates.snapshot(layer, {"text": "history"}, history.STREAM, 0))
    results["gate, per frame (daphne)"] = per_op(
        lambda n: gate.admit("daphne.response.bench!g", gates.live(layer, {"text": "m"}, history.STREAM, n + 1)))
    print(json.dumps(results))


def end_to_end(env, count, runs, folder):
    port = topology.free_port()
    daphne = topology.web(port, env, log_path=os.path.join(folder, "daphne.log"), extra_args=["-v", "0"]).start()
    workers = [topology.worker(env, log_path=os.path.join(folder, "worker-%d.log" % number)).start()
               for number in range(2)]
    clock = topology.clock(env, log_path=os.path.join(folder, "clock.log")).start()
    try:
        # A second after each burst for the workers to store it: storing is part of the cost.
        return bursts("http://127.0.0.1:%d" % port, count, runs, [worker.pid for worker in workers], settle=1)
    finally:
        for process in workers + [daphne, clock]:
            process.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--server", help="only the bursts, against this running server: http://127.0.0.1:8000")
    parser.add_argument("--pid", type=int, action="append", default=[],
                        help="with --server: a process whose CPU time to count (runserver's, or each runworker's)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.add_argument("--parts-alone", type=int, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.parts_alone:
        return parts_alone(options.parts_alone)
    if options.server:
        row = summary(bursts(options.server, options.burst, options.runs, options.pid, settle=1 if options.pid else 0),
                      options.burst, server=options.server)
        print(json.dumps({"end_to_end": [row]}) if options.json else
              "%s\n%s" % (HEADER % "server", table_row(row, options.server)))
        return

    folder = tempfile.mkdtemp(prefix="history-cost-")
    redis_port = topology.free_port()
    redis_server = topology.Process("redis", topology.redis_argv(redis_port, folder), port=redis_port,
                                    log_path=os.path.join(folder, "redis.log")).start()
    postgres = topology.Postgres(durable=True).start()
    print("redis-server pid %d on 127.0.0.1:%d, postgres pid %d on 127.0.0.1:%d, logs in %s"
          % (redis_server.pid, redis_port, postgres.server.pid, postgres.port, folder), file=sys.stderr, flush=True)
    figures = {"databases": {}}
    try:
        databases = {
            "SQLite": {"SQLITE_PATH": os.path.join(folder, "db.sqlite3"), "DATABASE_URL": ""},
            "PostgreSQL": {"DATABASE_URL": postgres.create_database("bench")},
        }
        for name, database in databases.items():
            env = topology.production_env("redis://127.0.0.1:%d/0" % redis_port, SECRET_KEY="bench",
                                          CHAT_RATE_LIMIT="off",
                                          LOG_LEVEL="WARNING", **database)
            subprocess.run([sys.executable, os.path.join(ROOT, "manage.py"), "migrate", "--verbosity", "0"],
                           env=env, check=True)
            subprocess.run([sys.executable, "-c", "import redis; redis.StrictRedis(port=%d).flushall()" % redis_port],
                           check=True)
            done = subprocess.run([sys.executable, __file__, "--parts-alone", str(options.messages)], env=env,
                                  check=True, capture_output=True, text=True)
            parts = json.loads(done.stdout.strip().splitlines()[-1])
            row = summary(end_to_end(env, options.burst, options.runs, folder), options.burst)
            figures["databases"][name] = {"parts_alone_us_per_operation": {part: round(micros) for part, micros in
                                                                           parts.items()}, "end_to_end": row}
            if options.json:
                continue
            print("\n%s, each part alone (%d operations):" % (name, options.messages))
            for part, micros in parts.items():
                print("  %-30s %7.0f µs" % (part, micros))
            print("  end to end, burst of %d: median %.2f s, worker CPU %d µs per message (median of %d), "
                  "%d runs out of order" % (options.burst, row["median_seconds"], row["worker_cpu_us_per_message"],
                                           options.runs, row["runs_out_of_order"]), flush=True)
    finally:
        postgres.stop()
        redis_server.stop()
    if options.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as failed:  # a burst refused or lost, a server that did not start: say which
        sys.exit("%s: %s" % (os.path.basename(__file__), failed))
