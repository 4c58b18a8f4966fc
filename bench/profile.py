"""Where the server's time goes: py-spy samples each process of a target while a scenario runs.

    .venv/bin/python bench/profile.py [--target project] [--scenario cpu] [--redis-delay-ms 0.5] [--top 25]

Starts the target as bench/compare.py does, runs bench/chatbench.py's scenario against
it, and meanwhile records every daphne and worker process (py-spy, bench/requirements.txt;
``--nonblocking``: the processes are never paused). Prints, per process, the functions
with the most samples: **self** (the function itself was running) and **total** (it was on
the stack), as a share of that process's samples, idle waiting included (a thread
blocked in BLPOP or epoll is sampled too, with ``--idle``). The collapsed stacks are kept
in the output folder, for a flame graph (``flamegraph.pl``, speedscope).
"""
import argparse
import collections
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import compare  # noqa: E402

PY_SPY = os.path.join(os.path.dirname(sys.executable), "py-spy")


def ensure_py_spy():
    """py-spy from bench/requirements.txt, into this venv when it is missing."""
    if not os.path.exists(PY_SPY):
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-r",
                        os.path.join(compare.ROOT, "bench", "requirements.txt")], check=True)


def summarise(path, top):
    """``(samples, by self, by total)``, each ``[(self share, total share, function)]``, from a
    py-spy raw (collapsed) file."""
    self_counts, total_counts, samples = collections.Counter(), collections.Counter(), 0
    with open(path) as stacks:
        for line in stacks:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count)
            samples += count
            frames = stack.split(";")
            self_counts[_short(frames[-1])] += count
            for frame in set(_short(frame) for frame in frames):
                total_counts[frame] += count
    if not samples:
        return 0, [], []
    by_self = [(self_counts[name] / samples, total_counts[name] / samples, name)
               for name, _ in self_counts.most_common(top)]
    by_total = [(self_counts[name] / samples, total_counts[name] / samples, name)
                for name, _ in total_counts.most_common(top)]
    return samples, by_self, by_total


def _short(frame):
    """``function (path:line)`` as ``function (module)``: lines differ within one function."""
    function, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return "%s (%s)" % (function, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="project")
    parser.add_argument("--scenario", default="cpu")
    parser.add_argument("--redis-delay-ms", type=float, default=None)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--duration", type=int, default=15, help="seconds to record (default 15)")
    parser.add_argument("--start", type=float, default=4,
                        help="seconds after the scenario starts to begin recording (default 4: past connecting; "
                             "0 records S3's connecting)")
    parser.add_argument("--idle", action="store_true", help="count threads waiting (BLPOP, epoll) as well")
    parser.add_argument("--out", default=None)
    options = parser.parse_args()
    ensure_py_spy()
    folder = options.out or tempfile.mkdtemp(prefix="chatbench-profile-")
    os.makedirs(folder, exist_ok=True)
    target = compare.Target(options.target, tempfile.mkdtemp(dir=folder), options.redis_delay_ms)
    try:
        port, _, pids = target.start()
        profiled = [process for process in target.processes if process.name not in ("redis", "redis-delay")]
        command = [sys.executable, os.path.join(compare.ROOT, "bench", "chatbench.py"), "ws://127.0.0.1:%d" % port,
                   "--scenario", options.scenario, "--json", os.path.join(folder, "report.json")]
        command += [argument for pid in pids for argument in ("--pid", str(pid))]
        if target.redis_stats:
            command += ["--redis-stats", str(target.redis_stats)]
        bench = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        # By default past connecting and settling: record the steady phase.
        recorders = []
        for process in profiled:
            output = os.path.join(folder, "%s.txt" % process.name)
            argv = [PY_SPY, "record", "--nonblocking", "--format", "raw", "--rate", "250", "--duration",
                    str(options.duration), "--pid", str(process.pid), "--output", output, "--threads"]
            if options.idle:
                argv.append("--idle")
            recorders.append((process.name, output, subprocess.Popen(
                ["/bin/sh", "-c", "sleep %s; exec \"$@\"" % options.start, "sh"] + argv,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
        for _, _, recorder in recorders:
            recorder.wait()
        print(bench.communicate()[0])
    finally:
        target.stop()
    for name, output, _ in recorders:
        if not os.path.exists(output):
            print("%s: py-spy recorded nothing" % name)
            continue
        samples, by_self, by_total = summarise(output, options.top)
        for order, rows in (("self", by_self), ("total", by_total)):
            print("\n%s: %d samples, by %s (self %%, total %%, function)" % (name, samples, order))
            for self_share, total_share, function in rows:
                print("  %5.1f %5.1f  %s" % (100 * self_share, 100 * total_share, function))
    print("\ncollapsed stacks in %s" % folder)


if __name__ == "__main__":
    main()
