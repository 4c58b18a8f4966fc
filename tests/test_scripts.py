"""scripts/run and scripts/prod as a newcomer runs them: a busy port stops them at once, saying
which port and how to choose another; scripts/prod leaves nothing behind when stopped with
Ctrl-C; and switching between scripts/test and scripts/run installs nothing.

The scripts run for real, with the Python running these tests (PYTHON), so in the venv
scripts/test set up for it (.venv-3.X): a test that gets as far as ensure_venv first checks
that this venv is set up, so that it never creates or fills one.
"""
import hashlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys

import pytest
from websockets.sync.client import connect

from tests.logs import lines
from tests.servers import ROOT, Process, free_port

SCRIPTS = os.path.join(ROOT, "scripts")


def scripts_env(**extra):
    """The environment a newcomer's shell has: no Redis named, this Python chosen."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("REDIS_")}
    return dict(env, PYTHON=sys.executable, **extra)


@pytest.fixture
def set_up_venv():
    """scripts/_setup.sh's venv for this Python, installed for the tests with the current pins."""
    venv = os.path.join(ROOT, ".venv-%d.%d" % sys.version_info[:2])
    pins = hashlib.sha256(b"".join(open(os.path.join(ROOT, name), "rb").read() for name in
                                   ("requirements.txt", "constraints.txt", "tests/requirements.txt",
                                    "scripts/requirements.txt"))).hexdigest()[:16]
    try:
        installed = open(os.path.join(venv, ".installed"), encoding="utf-8").read().split()
    except FileNotFoundError:
        installed = []
    if installed != [pins, "tests/requirements.txt"]:
        pytest.fail("%s is not set up for the tests with the current pins (it has %r): run these tests with "
                    "scripts/test, which sets it up, so that the scripts run here install nothing" % (venv, installed))
    return venv


@pytest.fixture
def busy_port():
    """A port something listens on, as a forgotten server would."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


@pytest.mark.parametrize("script", ["run", "prod"])
def test_a_busy_port_stops_the_script_at_once_naming_the_port_and_how_to_choose_another(script, busy_port):
    done = subprocess.run([os.path.join(SCRIPTS, script)], env=scripts_env(PORT=str(busy_port), SECRET_KEY="test"),
                          capture_output=True, text=True, timeout=60)

    assert done.returncode != 0
    assert "port %d is in use on 127.0.0.1" % busy_port in done.stderr
    assert "PORT=8001" in done.stderr
    # Before anything was installed or started.
    assert not re.search(r"using Python|installing|creating|Redis|chat at", done.stderr), done.stderr


def test_scripts_prod_stopped_with_ctrl_c_removes_what_it_created(set_up_venv, tmp_path):
    temporary = tmp_path / "tmp"  # where its mktemp and Python's tempfile create things
    temporary.mkdir()
    port = free_port()
    env = scripts_env(PORT=str(port), SECRET_KEY="test", WORKERS="1", TMPDIR=str(temporary),
                      SQLITE_PATH=str(tmp_path / "db.sqlite3"))
    prod = Process("scripts/prod", [os.path.join(SCRIPTS, "prod")], env=env, port=port,
                   log_path=tmp_path / "prod.log")
    try:
        prod.start(ready_timeout=120)
        assert os.listdir(temporary), "scripts/prod created its Redis folder elsewhere"
        redis_ports = [int(found) for found in re.findall(r"shard\S* +pid \d+ +127\.0\.0\.1:(\d+)", prod.read_log())]
        assert redis_ports, prod.read_log()

        os.killpg(prod.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the script's process group
        prod.process.wait(timeout=60)
    finally:
        if prod.running():
            os.killpg(prod.pid, signal.SIGTERM)
            prod.process.wait(timeout=30)

    assert os.listdir(temporary) == []
    for listening in [port] + redis_ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", listening), timeout=5).close()
    assert lines(prod.read_log(), r"stopped Redis \(pid \d+\)$")


def test_switching_between_scripts_test_and_scripts_run_installs_nothing(set_up_venv):
    # What scripts/test, scripts/run and scripts/test again do first.
    steps = "ensure_venv tests/requirements.txt; ensure_venv requirements.txt; ensure_venv tests/requirements.txt"
    done = subprocess.run(["bash", "-c", "source scripts/_setup.sh; " + steps], cwd=ROOT, env=scripts_env(),
                          capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert done.stderr.count("==> using Python") == 3, done.stderr
    assert not re.search(r"installing|creating", done.stderr), done.stderr


def test_scripts_run_with_a_redis_url_nothing_answers_stops_at_once_saying_so(set_up_venv):
    port = free_port()
    done = subprocess.run([os.path.join(SCRIPTS, "run")], env=scripts_env(
        PORT=str(free_port()), REDIS_URL="redis://default:secret@127.0.0.1:%d/0" % port),
        capture_output=True, text=True, timeout=120)

    assert done.returncode == 1
    assert "REDIS_URL redis://127.0.0.1:%d/0 does not answer" % port in done.stderr
    assert "unset REDIS_URL" in done.stderr and "secret" not in done.stderr
    assert "chat at" not in done.stderr


def listening_on_every_interface(port):
    """Whether something listens on 0.0.0.0:``port`` (/proc/net/tcp: local address, state 0A is LISTEN)."""
    with open("/proc/net/tcp") as table:
        return any(fields[1] == "00000000:%04X" % port and fields[3] == "0A"
                   for fields in (line.split() for line in table.readlines()[1:]))


def test_scripts_run_with_host_0_0_0_0_serves_a_phone_on_the_same_network_and_warns_who_else_can(
        set_up_venv, tmp_path):
    port = free_port()
    env = scripts_env(PORT=str(port), HOST="0.0.0.0", SQLITE_PATH=str(tmp_path / "db.sqlite3"))
    run = Process("scripts/run", [os.path.join(SCRIPTS, "run"), "--noreload"], env=env, port=port,
                  log_path=tmp_path / "run.log")
    try:
        run.start(ready_timeout=120)
        said = run.read_log()
        addresses = [re.search(r"http://([\d.]+):", line).group(1)
                     for line in lines(said, r"^==> from a phone on the same network: http://[\d.]+:%d/$" % port)]
        assert addresses, said
        assert lines(said, r"^==> WARNING: anyone on these networks can reach this development server, with DEBUG on")
        assert listening_on_every_interface(port)
        # A phone asks for the page and opens its socket by the machine's address (sent here over
        # loopback: Host and Origin are what carry the address to Django and to the chat).
        for address in addresses:
            page = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            page.request("GET", "/", headers={"Host": "%s:%d" % (address, port)})
            assert page.getresponse().status == 200
            page.close()
            with connect("ws://%s:%d/lobby/?handle=phone" % (address, port), origin="http://%s:%d" % (address, port),
                         sock=socket.create_connection(("127.0.0.1", port)), open_timeout=30) as phone:
                assert json.loads(phone.recv(timeout=30))["type"] == "welcome"
    finally:
        run.stop()
