# Shared set-up for scripts/run, scripts/test, scripts/prod and .ci/run; sourced, not run.
# Chooses a supported Python, creates its venv (.venv-3.X, one per Python; .venv links to the
# one in use), installs the pinned requirements when they changed, and installs Debian packages
# that are missing (as root, or via sudo).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Newest first: without PYTHON, the commands use the newest of these that the machine has.
SUPPORTED_PYTHONS="3.13 3.12 3.11"
PYENV_VERSIONS="${PYENV_ROOT:-$HOME/.pyenv}/versions"

say() { printf '==> %s\n' "$*" >&2; }

# find_python VERSION (e.g. 3.12): print the executable of a Python VERSION on this machine, or
# fail: pythonVERSION or python3 on PATH, else pyenv's newest VERSION.* (pyenv's shims on PATH
# run only the versions pyenv has selected, so each candidate is run to ask its version).
find_python() {
  local version="$1" candidate
  for candidate in "python$version" python3 \
      $(ls -d "$PYENV_VERSIONS/$version".*/bin/"python$version" 2>/dev/null | sort -rV); do
    if command -v "$candidate" >/dev/null &&
        "$candidate" -c 'import sys; sys.exit("%d.%d" % sys.version_info[:2] != sys.argv[1])' "$version" 2>/dev/null; then
      "$candidate" -c 'import sys; print(sys.executable)'
      return
    fi
  done
  return 1
}

# choose_python: set PYTHON_BIN and PYTHON_VERSION (3.X) to $PYTHON when it is set (a command
# or a path, e.g. PYTHON=python3.12), else to the newest supported Python found.
choose_python() {
  local version
  if [ -n "${PYTHON:-}" ]; then
    case "$PYTHON" in
      python3.* | 3.*) version="${PYTHON#python}"
        PYTHON_BIN="$(find_python "$version")" ||
          { say "PYTHON=$PYTHON: Python $version is not on PATH nor in $PYENV_VERSIONS"; exit 1; } ;;
      *) PYTHON_BIN="$("$PYTHON" -c 'import sys; print(sys.executable)')" ||
          { say "PYTHON=$PYTHON does not run"; exit 1; } ;;
    esac
  else
    for version in $SUPPORTED_PYTHONS; do
      PYTHON_BIN="$(find_python "$version")" && break
    done
    [ -n "${PYTHON_BIN:-}" ] ||
      { say "no supported Python found ($SUPPORTED_PYTHONS), on PATH or in $PYENV_VERSIONS"; exit 1; }
  fi
  PYTHON_VERSION="$("$PYTHON_BIN" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  case " $SUPPORTED_PYTHONS " in
    *" $PYTHON_VERSION "*) ;;
    *) say "$PYTHON_BIN is Python $PYTHON_VERSION; supported: $SUPPORTED_PYTHONS (choose one with PYTHON=python3.X $0)"
       exit 1 ;;
  esac
}

# ensure_venv REQUIREMENTS_FILE: install it into the chosen Python's venv unless it is installed
# there already, with the same pins, and put that venv first on PATH. The test requirements
# include the runtime ones, so a venv set up for the tests serves scripts/run and scripts/prod
# too, and switching does not reinstall.
ensure_venv() {
  local requirements="$1" pins installed
  choose_python
  VENV="$ROOT/.venv-$PYTHON_VERSION"
  pins="$(cat requirements.txt constraints.txt tests/requirements.txt scripts/requirements.txt | sha256sum | cut -c1-16)"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PYTHON_BIN" -m venv --clear "$VENV"
  fi
  installed="$(cat "$VENV/.installed" 2>/dev/null || true)"
  if [ "$installed" != "$pins tests/requirements.txt" ] && [ "$installed" != "$pins $requirements" ]; then
    say "installing $requirements into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" -c constraints.txt
    "$VENV/bin/python" -m pip check
    echo "$pins $requirements" > "$VENV/.installed"
  fi
  # .venv, as the docs write it, is the venv last used; the commands themselves use $VENV.
  if [ -L .venv ] || [ ! -e .venv ]; then
    ln -sfn "$(basename "$VENV")" .venv
  else
    say ".venv is a venv of its own, made before each Python had one: remove it to have .venv link to $(basename "$VENV")"
  fi
  say "using Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())') ($(readlink -f "$VENV/bin/python")) in $(basename "$VENV")"
  export PATH="$VENV/bin:$PATH"
  compile_translations
}

# compile_translations: locale/*/LC_MESSAGES/*.po into the .mo files Django reads, with Babel's
# pybabel (a pinned requirement). Less than a second, so every set-up does it.
compile_translations() {
  pybabel --quiet compile --directory locale --domain "django djangojs"
}

# ensure_debian COMMAND PACKAGE: apt-get install PACKAGE when COMMAND is missing.
ensure_debian() {
  local command="$1" package="$2"
  command -v "$command" >/dev/null && return
  _apt_install "$package" "$command"
}

# ensure_debian_path PATH PACKAGE: apt-get install PACKAGE when PATH does not exist
# (for servers Debian keeps off PATH, such as /usr/lib/postgresql).
ensure_debian_path() {
  [ -e "$1" ] && return
  _apt_install "$2" "$1"
}

_apt_install() {
  local package="$1" command="$2" sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  say "installing Debian's $package (for $command)"
  if [ -z "${_APT_UPDATED:-}" ]; then
    $sudo apt-get update -qq
    _APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$package" >/dev/null
}

# free_port: a TCP port nothing listens on, on 127.0.0.1.
free_port() {
  python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# require_free_port PORT: stop here, saying so, when something already listens on PORT
# (daphne would log the failure and keep running, serving nothing). Needs no venv, so the
# scripts call it first, before anything is installed or started.
require_free_port() {
  [ -n "${PYTHON_BIN:-}" ] || choose_python
  # SO_REUSEADDR, as the servers bind: a port whose old connections linger in TIME_WAIT is free.
  if ! "$PYTHON_BIN" -c 'import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null; then
    say "port $1 is in use on 127.0.0.1: stop what listens there, or choose another with PORT=8001 $0"
    exit 1
  fi
}

# wait_for_port PORT PID LOG: wait until PORT accepts connections; fail with LOG if PID exits first.
wait_for_port() {
  local port="$1" pid="$2" log="$3" tries=0
  until python -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5).close()' "$port" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null || [ $((tries += 1)) -gt 200 ]; then
      say "the server for port $port did not start:"; cat "$log" >&2; exit 1
    fi
    sleep 0.05
  done
}
