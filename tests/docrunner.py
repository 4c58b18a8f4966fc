"""Runs a document's command blocks as a user pastes them (tests/test_doc_commands.py).

The docs' conventions, which this enforces:

* Every fenced ```sh block of README.md and docs/*.md is **runnable**. It runs in
  ``bash -euo pipefail``, with stdin closed, from the root of a **user's tree**
  (``user_tree``): a copy of the work tree as a user has it after cloning it and running
  scripts/run, whose venv holds the runtime requirements only. A command that needs a
  tool's own requirements (websockets: scripts/requirements.txt; the benchmarks':
  bench/requirements.txt) fails there unless the document installs them first, as a user
  would have to. The environment is a fresh shell's on a machine set up by scripts/test:
  no venv on PATH, and none of the variables settings.py reads (nor HOST, WORKERS,
  SHARDS) set. Port 8000 in it becomes a free port, and so does 6379, the Redis port a
  user types, each the same in every block of one document; PORT is set to the first, as
  scripts/run and scripts/prod listen on PORT, 8000 when it is unset. It must exit 0,
  leave no process of its own running, and leave ``git status --porcelain`` as it found it.
* ``<!-- doc-test: server -->`` on the line just before the fence: the block starts a
  server in the foreground (scripts/run, scripts/prod, daphne ...). It is started in the
  background, in a process group of its own, and waited for until
  http://127.0.0.1:PORT/ answers (if it exits first, the test fails with its output). It
  stays up while the document's next blocks run, and is stopped with SIGINT, as Ctrl-C
  stops it, at the next server block or at the end of the document: it must then exit,
  with every process of its group, within STOP_SECONDS.
* ``<!-- doc-test: ci: COMMAND -->`` just before the fence: the block takes minutes, and
  COMMAND, a short variant the document names, runs instead.
* Only ```sh is runnable. ```bash, ```shell and ```zsh are refused, so that no command
  escapes the test by how its fence is spelled: an example that cannot run here (systemd,
  nginx, a second machine) is ```text, ```console, ```ini, ```nginx ...

A failure names the document and the line of the block, shows the block as it ran, and
the end of its output (or of the server's).
"""
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
# Where user_tree lays its tree: one place per work tree, outside it, the same on every run,
# since a venv holds the path it was made at.
TREES = Path(tempfile.gettempdir()) / ("channels_example-docs-%s" % hashlib.sha256(bytes(ROOT)).hexdigest()[:12])
TREE = TREES / "tree"

# Seconds a server may take to answer, a block to run, and a server to exit after SIGINT.
START_SECONDS = 90
BLOCK_SECONDS = 300
STOP_SECONDS = 15
# The ports the docs write, each replaced by a free one (not inside a longer number).
PORTS = {"8000": re.compile(r"(?<!\d)8000(?!\d)"), "6379": re.compile(r"(?<!\d)6379(?!\d)")}
# Besides what settings.py reads: the scripts' own variables.
SCRIPT_VARIABLES = {"PORT", "HOST", "WORKERS", "SHARDS", "DJANGO_SETTINGS_MODULE"}

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)[^`]*$")
MARKER = re.compile(r"^[ \t]*<!--[ \t]*doc-test:[ \t]*(?P<directive>.*?)[ \t]*-->[ \t]*$")
NOT_RUNNABLE_SHELLS = {"bash", "shell", "zsh"}
OUTPUT_LINES = 60


class DocError(AssertionError):
    """A document breaks the conventions, or one of its blocks failed."""


@dataclass
class Block:
    doc: Path
    line: int  # of the opening fence, counted from 1
    code: str
    server: bool = False
    ci: str = None  # the command run instead, for a block that takes minutes

    @property
    def where(self):
        return "%s:%d" % (_shown(self.doc), self.line)

    def command(self):
        return self.ci if self.ci is not None else self.code


def _shown(path):
    for root in (ROOT, TREE):
        try:
            return str(Path(path).resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)


def blocks(doc):
    """The ```sh blocks of ``doc``, in order, with their markers; DocError for a marker that
    marks no ```sh block, an unknown directive, or a shell block spelled other than ```sh."""
    lines = Path(doc).read_text(encoding="utf-8").split("\n")
    found, marker, index = [], None, 0
    while index < len(lines):
        line, number = lines[index], index + 1
        opening = FENCE.match(line)
        if opening is None:
            directive = MARKER.match(line)
            if directive:
                marker = (number, directive.group("directive"))
            elif marker and line.strip():
                raise DocError("%s:%d: the doc-test marker is not just before a ```sh fence"
                               % (_shown(doc), marker[0]))
            index += 1
            continue
        indent, fence, info = opening.group("indent"), opening.group("fence"), opening.group("info").lower()
        closing = re.compile(r"^[ \t]*%s%s*[ \t]*$" % (re.escape(fence), re.escape(fence[0])))
        end = next((at for at in range(index + 1, len(lines)) if closing.match(lines[at])), len(lines))
        body = [text[len(indent):] if text.startswith(indent) else text.lstrip() for text in lines[index + 1:end]]
        if info in NOT_RUNNABLE_SHELLS:
            raise DocError("%s:%d: ```%s: write ```sh for a block that runs as pasted, or ```console / ```text "
                           "for an example that cannot run here" % (_shown(doc), number, info))
        if info == "sh":
            block = Block(Path(doc), number, "\n".join(body) + "\n")
            if marker:
                _apply(block, *marker)
            found.append(block)
        elif marker:
            raise DocError("%s:%d: the doc-test marker is before a ```%s fence, not ```sh"
                           % (_shown(doc), marker[0], info))
        marker, index = None, end + 1
    if marker:
        raise DocError("%s:%d: the doc-test marker is not just before a ```sh fence" % (_shown(doc), marker[0]))
    return found


def _apply(block, line, directive):
    if directive == "server":
        block.server = True
    elif directive.startswith("ci:") and directive[3:].strip():
        block.ci = directive[3:].strip()
    else:
        raise DocError("%s:%d: unknown doc-test directive %r (server, or ci: COMMAND)"
                       % (_shown(block.doc), line, directive))


def signature(doc):
    """What a Chinese twin must repeat byte for byte: each ```sh block with its marker."""
    return [(block.server, block.ci, block.code) for block in blocks(doc)]


def settings_variables():
    """The environment variables settings.py reads."""
    text = (ROOT / "channels_example" / "settings.py").read_text(encoding="utf-8")
    return set(re.findall(r"""os\.environ(?:\.get\(|\[)\s*["']([A-Z][A-Z0-9_]*)["']""", text))


def fresh_environment():
    """This process's environment (PATH, PYTHON, HOME) without the chat's variables, and without the
    test venv that scripts/test put first on PATH: a fresh shell has no venv."""
    dropped = settings_variables() | SCRIPT_VARIABLES | {"CHANNELS_EXAMPLE_SERVER", "VIRTUAL_ENV"}
    environment = {name: value for name, value in os.environ.items() if name not in dropped}
    if sys.prefix != sys.base_prefix:
        venv = os.path.join(sys.prefix, "bin")
        environment["PATH"] = os.pathsep.join(
            entry for entry in environment.get("PATH", "").split(os.pathsep) if entry.rstrip("/") != venv)
    return environment


@contextlib.contextmanager
def user_tree(source=ROOT):
    """A user's tree, for the docs' commands: the files of ``source``'s work tree (tracked and
    untracked, not ignored), committed in a repository of their own, set up by scripts/run's
    ensure_venv: its venv holds requirements.txt only, and .venv links to it.

    The venv is made once, while the pins stay the same, and kept beside the tree (TREES): each
    tree gets a copy, so what one document installs into it no other document sees. The tree is always
    laid at TREE (a venv holds its path), one at a time: a second run waits for the first."""
    TREES.mkdir(exist_ok=True)
    with open(TREES / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        shutil.rmtree(TREE, ignore_errors=True)
        try:
            _copy_work_tree(source, TREE)
            _set_up_venv(TREE)
            yield TREE
        finally:
            shutil.rmtree(TREE, ignore_errors=True)


def _copy_work_tree(source, tree):
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=source,
                            stdout=subprocess.PIPE, check=True).stdout.decode("utf-8").split("\0")
    for name in filter(None, listed):
        origin, copy = Path(source) / name, tree / name
        if not origin.is_symlink() and not origin.exists():
            continue  # deleted in the work tree, not yet in git
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(origin, copy, follow_symlinks=False)
    git = ["git", "-c", "user.name=docs", "-c", "user.email=docs@localhost", "-c", "commit.gpgsign=false"]
    for command in (["init", "--quiet"], ["add", "--all"], ["commit", "--quiet", "--message", "a user's tree"]):
        subprocess.run(git + command, cwd=tree, check=True)


def _set_up_venv(tree):
    """Put the kept runtime venv into ``tree`` (made anew when there is none, or its pins changed)."""
    def ensure_venv():
        shell(tree, 'source scripts/_setup.sh && ensure_venv requirements.txt')
        return (tree / ".venv").resolve()

    version = shell(tree, 'source scripts/_setup.sh && choose_python && echo "$PYTHON_VERSION"').strip()
    kept, venv = TREES / ("venv-" + version), tree / (".venv-" + version)
    if kept.exists():
        # Hard links, three times faster than copies: pip and Python replace a file, never write
        # into it, so nothing done in the tree reaches the kept venv; but ensure_venv writes
        # its marker in place, so the tree gets a marker of its own.
        subprocess.run(["cp", "-al", str(kept), str(venv)], check=True)
        marker = venv / ".installed"
        text = marker.read_text()
        marker.unlink()
        marker.write_text(text)
    installed = _marker(venv)
    ensure_venv()
    if installed is not None and _marker(venv) == installed:
        return  # the kept venv had the pins
    if installed is not None:  # the pins changed: a venv made anew keeps nothing the old pins had
        shutil.rmtree(venv)
        ensure_venv()
    shutil.rmtree(kept, ignore_errors=True)
    subprocess.run(["cp", "-a", str(venv), str(kept)], check=True)


def _marker(venv):
    """What ensure_venv wrote into the venv: the pins' digest and the requirements installed."""
    try:
        return (venv / ".installed").read_text()
    except FileNotFoundError:
        return None


def shell(root, command):
    """Run ``command`` in bash from ``root``, in a fresh shell's environment; its output (DocError if it fails)."""
    done = subprocess.run(["bash", "-c", command], cwd=root, env=fresh_environment(), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if done.returncode != 0:
        raise DocError("setting up the user's tree failed: %s exited with %d:\n%s"
                       % (command, done.returncode, done.stdout))
    return done.stdout


def git_status(root):
    return subprocess.run(["git", "status", "--porcelain"], cwd=root, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, check=True, universal_newlines=True).stdout


def group_alive(pgid):
    """Whether any process of the group is still running (zombies waiting for init do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def wait_for_group(pgid, seconds):
    deadline = time.monotonic() + seconds
    while group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def tail(path):
    text = Path(path).read_text(encoding="utf-8", errors="replace").rstrip("\n").split("\n")
    shown = text[-OUTPUT_LINES:]
    skipped = "    (%d lines before)\n" % (len(text) - len(shown)) if len(text) > len(shown) else ""
    return skipped + "\n".join("    " + line for line in shown)


def report(block, what, command, output=None):
    ran = "".join("    " + line + "\n" for line in command.rstrip("\n").split("\n"))
    text = "%s: %s\n  the block%s:\n    ```sh\n%s    ```\n" % (
        block.where, what, " (its ci: variant)" if block.ci is not None else "", ran)
    if output is not None:
        text += "  its output, the last %d lines:\n%s\n" % (OUTPUT_LINES, tail(output))
    return DocError(text)


class Server:
    """A server block, running in the background in its own process group."""

    def __init__(self, block, command, env, root, port, log, start_seconds, stop_seconds):
        self.block, self.command, self.port, self.log = block, command, port, log
        self.stop_seconds = stop_seconds
        with open(log, "w") as output:
            self.process = subprocess.Popen(["bash", "-euo", "pipefail", "-c", command], cwd=root, env=env,
                                            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + start_seconds
        while not self.answers():
            if self.process.poll() is not None:
                self.kill()
                raise report(block, "the server exited with %d before http://127.0.0.1:%d/ answered"
                             % (self.process.returncode, port), command, log)
            if time.monotonic() > deadline:
                self.kill()
                raise report(block, "http://127.0.0.1:%d/ did not answer within %d s" % (port, start_seconds),
                             command, log)
            time.sleep(0.1)

    def answers(self):
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/" % self.port, timeout=5).close()
        except urllib.error.HTTPError:
            return True  # any HTTP answer: the server is up
        except (OSError, urllib.error.URLError):
            return False
        return True

    def kill(self):
        kill_group(self.process.pid)
        self.process.wait()

    def stop(self):
        """SIGINT to the group, as Ctrl-C; DocError unless it exited within stop_seconds, or if
        it had exited before it was stopped."""
        died = self.process.poll()
        try:
            os.killpg(self.process.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(self.stop_seconds)
            stopped = wait_for_group(self.process.pid, max(0.5, self.stop_seconds - 1))
        except subprocess.TimeoutExpired:
            stopped = False
        if not stopped:
            self.kill()
            raise report(self.block, "the server did not exit within %d s of SIGINT (Ctrl-C)" % self.stop_seconds,
                         self.command, self.log)
        if died is not None:
            raise report(self.block, "the server exited with %d while the document's later blocks ran" % died,
                         self.command, self.log)


def run_block(block, command, env, root, log, seconds):
    with open(log, "w") as output:
        process = subprocess.Popen(["bash", "-euo", "pipefail", "-c", command], cwd=root, env=env,
                                   stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        code = process.wait(seconds)
    except subprocess.TimeoutExpired:
        kill_group(process.pid)
        process.wait()
        raise report(block, "the block did not end within %d s (a short variant is `<!-- doc-test: ci: ... -->`)"
                     % seconds, command, log)
    if code != 0:
        kill_group(process.pid)
        raise report(block, "the block exited with %d" % code, command, log)
    if not wait_for_group(process.pid, 2):
        kill_group(process.pid)
        raise report(block, "the block left processes running (a server block needs `<!-- doc-test: server -->`)",
                     command, log)


def substitute(command, ports):
    for written, pattern in PORTS.items():
        command = pattern.sub(str(ports[written]), command)
    return command


def run_document(doc, root=ROOT, start_seconds=START_SECONDS, block_seconds=BLOCK_SECONDS,
                 stop_seconds=STOP_SECONDS, timings=None):
    """Run every ```sh block of ``doc`` from ``root``; DocError at the first that fails.

    ``timings``, a list, receives ``(block, seconds)`` for each block run (a server's
    seconds are those until it answered)."""
    ports = {written: free_port() for written in PORTS}
    env = dict(fresh_environment(), PORT=str(ports["8000"]))
    server = None
    with tempfile.TemporaryDirectory(prefix="doc-test-") as logs:
        try:
            for number, block in enumerate(blocks(doc)):
                command = substitute(block.command(), ports)
                if server is not None and block.server:
                    before = git_status(root)
                    server, stopping = None, server
                    stopping.stop()
                    _unchanged(stopping.block, before, git_status(root), "after it was stopped")
                before = git_status(root)
                started = time.monotonic()
                log = os.path.join(logs, "block-%d.log" % number)
                if block.server:
                    server = Server(block, command, env, root, ports["8000"], log, start_seconds, stop_seconds)
                else:
                    run_block(block, command, env, root, log, block_seconds)
                if timings is not None:
                    timings.append((block, time.monotonic() - started))
                _unchanged(block, before, git_status(root), "")
            if server is not None:
                before = git_status(root)
                server, stopping = None, server
                stopping.stop()
                _unchanged(stopping.block, before, git_status(root), "after it was stopped")
        finally:
            if server is not None:
                try:
                    server.stop()
                except DocError:
                    pass  # the failure being raised already says more


def _unchanged(block, before, after, when):
    if before != after:
        raise DocError("%s: the block changed the work tree%s (write outputs under /tmp or $(mktemp -d)):\n"
                       "  git status --porcelain before:\n%s\n  and after:\n%s\n"
                       % (block.where, " " + when if when else "", _indent(before), _indent(after)))


def _indent(text):
    return "\n".join("    " + line for line in text.rstrip("\n").split("\n")) if text.strip() else "    (clean)"
