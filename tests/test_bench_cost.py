"""bench/ordering_cost.py and bench/history_cost.py give true figures: run briefly against a
running server (--server), each reports its bursts in the shape the docs quote, and on a server
that keeps each socket's order, no burst out of order."""
import json
import os
import subprocess
import sys

import pytest

from tests.servers import ROOT

FIELDS = {"server", "burst", "runs", "median_seconds", "runs_out_of_order", "median_inversions",
          "worker_cpu_us_per_message"}


@pytest.mark.parametrize("script", ["ordering_cost.py", "history_cost.py"])
def test_the_cost_script_reports_every_burst_in_order_on_an_ordered_server(script, runserver):
    server = "http://127.0.0.1:%d" % runserver.port
    done = subprocess.run([sys.executable, os.path.join(ROOT, "bench", script), "--server", server,
                           "--pid", str(runserver.pid), "--burst", "100", "--runs", "3", "--json"],
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    [row] = json.loads(done.stdout)["end_to_end"]
    assert set(row) == FIELDS
    assert (row["server"], row["burst"], row["runs"]) == (server, 100, 3)
    assert (row["runs_out_of_order"], row["median_inversions"]) == (0, 0)
    assert row["median_seconds"] > 0 and row["worker_cpu_us_per_message"] >= 0


def test_a_burst_the_server_refuses_ends_the_script_saying_why(start_runserver):
    server = start_runserver(CHAT_RATE_LIMIT="5/s:20")
    done = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "ordering_cost.py"), "--server",
                           "http://127.0.0.1:%d" % server.port, "--burst", "100", "--runs", "1"],
                          capture_output=True, text=True, timeout=60)

    assert done.returncode != 0
    assert "refused the burst: rate_limited" in done.stderr and "CHAT_RATE_LIMIT=off" in done.stderr
