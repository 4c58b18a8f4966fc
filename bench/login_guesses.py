"""How many password guesses get through: 1,000 wrong logins within a minute (docs/security.md).

    .venv/bin/python bench/login_guesses.py [--tries 1000] [--seconds 60] [--clients 8]

Starts the production topology (redis-server, daphne with --proxy-headers, two runworkers,
the clock, SQLite) on free loopback ports and signs up ``ann``. Then, for each shape of attack, it sends
``--tries`` logins with wrong passwords, spread evenly over ``--seconds`` (later, if the workers
answer more slowly), from ``--clients`` clients at once:

* one address guessing ``ann``'s password;
* a new address (X-Forwarded-For) for every guess at ``ann``'s password;
* one address guessing a new username each time.

For each it prints the tries, the guesses whose password a worker checked (the failures counted
in the database; on a tree without throttling, the wrong-password answers), those refused with
429 unchecked, and how long the tries took; then what ``ann`` gets with her right password. The
failure counts are cleared between shapes. Everything it started is stopped by PID.
"""
import argparse
import concurrent.futures
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from channels_example import topology  # noqa: E402

PASSWORD = "a-long-password-9"


class Client:
    """One browser: its cookies and CSRF token, fetched once; ``log_in`` returns the status."""

    def __init__(self, port):
        self.url = "http://127.0.0.1:%d/accounts/login/" % port
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        page = self.opener.open(self.url, timeout=60).read().decode()
        self.token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

    def log_in(self, username, password, address=None):
        headers = {"Referer": self.url}
        if address:
            headers["X-Forwarded-For"] = address
        data = urllib.parse.urlencode({"username": username, "password": password,
                                       "csrfmiddlewaretoken": self.token}).encode()
        try:
            with self.opener.open(urllib.request.Request(self.url, data=data, headers=headers), timeout=120) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as refused:
            return refused.code, refused.read().decode()


def attack(port, tries, seconds, clients, guess):
    """Send ``tries`` logins, ``guess(number)`` giving each one's (username, address), paced over ``seconds``."""
    local = threading.local()
    started = time.monotonic()

    def one(number):
        time.sleep(max(0, started + number * seconds / tries - time.monotonic()))
        if not hasattr(local, "client"):
            local.client = Client(port)
        username, address = guess(number)
        return local.client.log_in(username, "guess-%d" % number, address)

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(one, range(tries)))
    return answers, time.monotonic() - started


def counted(sqlite_path):
    """The failed logins the database counted, or None on a tree that counts none."""
    with sqlite3.connect(sqlite_path, timeout=20) as connection:
        try:
            return connection.execute("SELECT COALESCE(SUM(failures_since_start), 0) FROM axes_accessattempt").fetchone()[0]
        except sqlite3.OperationalError:
            return None


def clear(sqlite_path):
    with sqlite3.connect(sqlite_path, timeout=20) as connection:
        try:
            connection.execute("DELETE FROM axes_accessattempt")
        except sqlite3.OperationalError:
            pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=8)
    options = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="login-guesses-")
    sqlite_path = os.path.join(folder, "db.sqlite3")
    redis_port, port = topology.free_port(), topology.free_port()
    started = [topology.Process("redis", topology.redis_argv(redis_port, folder), port=redis_port,
                                log_path=os.path.join(folder, "redis.log")).start()]
    env = topology.production_env("redis://127.0.0.1:%d/0" % redis_port, SECRET_KEY="bench", SQLITE_PATH=sqlite_path,
                                  LOG_LEVEL="ERROR")
    subprocess.run([sys.executable, os.path.join(ROOT, "manage.py"), "migrate", "-v", "0"], env=env, check=True)
    started.append(topology.web(port, env, log_path=os.path.join(folder, "daphne.log"),
                                extra_args=["--proxy-headers", "-v", "0"]).start())
    started += [topology.worker(env, log_path=os.path.join(folder, "w%d.log" % n)).start() for n in range(2)]
    started.append(topology.clock(env, log_path=os.path.join(folder, "clock.log")).start())
    try:
        signup = Client(port)
        signup.url = signup.url.replace("login", "signup")
        page = signup.opener.open(signup.url, timeout=60).read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        signup.opener.open(urllib.request.Request(signup.url, headers={"Referer": signup.url}, data=urllib.parse.urlencode(
            {"username": "ann", "password1": PASSWORD, "password2": PASSWORD, "csrfmiddlewaretoken": token}).encode()))
        shapes = {
            "one address, one username": lambda number: ("ann", "203.0.113.9"),
            # Addresses of the benchmarking range (RFC 2544), in a header only: no packet goes there.
            "a new address each time, one username": lambda number: ("ann", "198.18.%d.%d" % (
                number >> 8 & 255, number & 255)),
            "one address, a new username each time": lambda number: ("user-%d" % number, "203.0.113.9"),
        }
        print("%d tries over %.0f s from %d clients at once, against daphne + 2 workers (SQLite):" % (
            options.tries, options.seconds, options.clients))
        print("| attack | tries | guesses checked | refused unchecked (429) | time taken | ann's right password |")
        print("|---|---|---|---|---|---|")
        for name, guess in shapes.items():
            clear(sqlite_path)
            answers, took = attack(port, options.tries, options.seconds, options.clients, guess)
            statuses = [status for status, _ in answers]
            assert set(statuses) <= {200, 429}, statuses
            checked = counted(sqlite_path)
            if checked is None:  # no throttling: every answer is the login form saying the password is wrong
                checked = sum("Please enter a correct username and password" in page for _, page in answers)
            right, page = Client(port).log_in("ann", PASSWORD, guess(options.tries)[1])
            said = re.search(r"Too many failed logins[^<]*", page)
            assert statuses.count(429) <= options.tries - checked + 1, statuses  # the one that locked is checked
            print("| %s | %d | %d | %d | %.1f s | %d%s |" % (
                name, options.tries, checked, options.tries - checked, took, right, ": " + said.group(0) if said else ""))
    finally:
        for process in reversed(started):
            process.stop()


if __name__ == "__main__":
    main()
