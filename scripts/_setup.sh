# Shared set-up for scripts/run, scripts/test and scripts/prod; sourced, not run.
# Creates .venv with the machine's Python 3.11, installs the pinned requirements when
# they changed, and installs Debian packages that are missing (as root, or via sudo).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
cd "$ROOT"

say() { printf '==> %s\n' "$*" >&2; }

python311() {
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      echo "$candidate"; return
    fi
  done
  say "Python 3.11 is required (python3.11 or python3 on PATH)"; exit 1
}

# ensure_venv REQUIREMENTS_FILE: install it into .venv unless it is installed already, with
# the same pins. The test requirements include the runtime ones, so a venv set up for the
# tests serves scripts/run and scripts/prod too, and switching does not reinstall.
ensure_venv() {
  local requirements="$1" pins installed
  pins="$(cat requirements.txt constraints.txt tests/requirements.txt | sha256sum | cut -c1-16)"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$(python311)" -m venv "$VENV"
  fi
  installed="$(cat "$VENV/.installed" 2>/dev/null || true)"
  if [ "$installed" != "$pins tests/requirements.txt" ] && [ "$installed" != "$pins $requirements" ]; then
    say "installing $requirements into $VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" -c constraints.txt
    "$VENV/bin/python" -m pip check
    echo "$pins $requirements" > "$VENV/.installed"
  fi
  export PATH="$VENV/bin:$PATH"
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
# (daphne would log the failure and keep running, serving nothing).
require_free_port() {
  # SO_REUSEADDR, as the servers bind: a port whose old connections linger in TIME_WAIT is free.
  if ! python -c 'import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null; then
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
