"""bench/login_guesses.py gives the figures docs/security.md quotes: run briefly, each attack has the
limit's worth of guesses checked and the rest refused, and the right password is told to wait."""
import os
import subprocess
import sys

from django.conf import settings

from tests.servers import ROOT


def test_the_login_guesses_script_reports_each_attack_throttled_at_the_limit():
    done = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "login_guesses.py"), "--tries", "30",
                           "--seconds", "3", "--clients", "4"], capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stderr
    rows = [line.split(" | ") for line in done.stdout.splitlines() if line.startswith("| one") or line.startswith("| a ")]
    limit = settings.AXES_FAILURE_LIMIT
    assert [row[1:4] for row in rows] == [["30", str(limit), str(30 - limit)]] * 3
    assert all(row[5].startswith("429: Too many failed logins") for row in rows)
