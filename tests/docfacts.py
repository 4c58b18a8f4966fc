"""The facts the docs state that code can check: read from the code, and from the docs' tables.

From the code (by reading its source, so nothing has to be started):

* ``error_codes()``: every ``code`` an error frame can carry, with the extra fields its
  frame adds (``retry_after``), from each ``ProtocolError(...)`` and ``protocol.error(...)``;
* ``close_codes()``: the WebSocket close codes this project sends, and those daphne and
  autobahn define; ``close_reasons()``: the reason each close frame of ours and daphne's carries;
* ``environment_reads(source)``: the environment variables a Python module reads, however
  it reads them (``os.environ.get``, ``[...]``, ``setdefault``, ``in``, ``os.getenv``, or a
  helper function of the module that does one of those with its argument);
* ``script_inputs()``: the variables scripts/ take from the environment (``${NAME:-default}``,
  ``${NAME:?why}``), with their defaults;
* ``known_names()``: every UPPER_CASE name a doc may write in backticks, each with where it
  is defined.

From a document: a table between ``<!-- drift: NAME -->`` and ``<!-- /drift -->`` and its
rows' cells, and the JSON values of its ```json blocks. The descriptions in those tables
are prose that no code holds, so the tables are not generated: ``table_differences``
compares the cells code can state (a code, a variable, who sends it) with what the code
says, and names every row missing, every row the code does not know, and every row twice.
"""
import ast
import http
import json
import logging
import re
import signal
import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "channels_example"
SETTINGS = PACKAGE / "settings.py"
SCRIPTS = sorted(path for path in (ROOT / "scripts").iterdir() if path.suffix in ("", ".sh") and path.is_file())
# Where the project's Python lives: its names are the names the docs may cite.
PYTHON_TREES = [PACKAGE, ROOT / "bench", ROOT / "tests", ROOT / "scripts"]
PROTOCOL = "channels_example.chat.protocol"


def python_files():
    files = [ROOT / "manage.py"]
    for tree in PYTHON_TREES:
        # Not the benchmark peer's own venv (bench/peer/.venv, made by bench/compare.py).
        files += sorted(path for path in tree.rglob("*.py")
                        if not any(part.startswith(".venv") for part in path.relative_to(ROOT).parts))
    return files


def _module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree, module):
    """``{local name: qualified name}`` for what a module imports and defines at its top level."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:  # import a.b binds a; import a.b as c binds c to a.b
                bound = alias.asname or alias.name.split(".")[0]
                names[bound] = alias.name if alias.asname else bound
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = "%s.%s" % (node.module, alias.name)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names[node.name] = "%s.%s" % (module, node.name)
    return names


def _qualified(node, names):
    """The dotted name a call's function refers to (``protocol.error`` -> ``...chat.protocol.error``)."""
    if isinstance(node, ast.Name):
        return names.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        base = _qualified(node.value, names)
        return base and "%s.%s" % (base, node.attr)
    return None


def _string(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


# ---------------------------------------------------------------- error codes

def package_sources():
    """``[(module name, source)]`` for every module of channels_example."""
    return [(_module_name(path), path.read_text(encoding="utf-8")) for path in sorted(PACKAGE.rglob("*.py"))]


def error_codes(sources=None):
    """``{code: set of extra fields}``: every code an error frame of the server can carry.

    A code is the literal first argument of ``ProtocolError(...)``, of a subclass of it
    (``InvalidRoom``: the code its ``__init__`` passes on), or of ``protocol.error(...)``;
    the extra fields are the keyword arguments given with it. ``sources``: ``[(module, text)]``,
    by default the package's.
    """
    parsed = []
    for module, source in sources or package_sources():
        tree = ast.parse(source)
        parsed.append((module, tree, _imports(tree, module)))
    builders = {PROTOCOL + ".ProtocolError", PROTOCOL + ".error"}
    codes = {}
    for module, tree, names in parsed:  # ProtocolError's subclasses and their fixed codes
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(_qualified(base, names) in builders for base in node.bases):
                for call in ast.walk(node):
                    if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) \
                            and call.func.attr == "__init__" and call.args and _string(call.args[0]):
                        codes.setdefault(_string(call.args[0]), set())
    for module, tree, names in parsed:
        for call in ast.walk(tree):
            if isinstance(call, ast.Call) and _qualified(call.func, names) in builders \
                    and call.args and _string(call.args[0]) is not None:
                extras = codes.setdefault(_string(call.args[0]), set())
                extras.update(keyword.arg for keyword in call.keywords if keyword.arg)
    return codes


# ---------------------------------------------------------------- close codes

def close_codes():
    """``{code: who}`` for the close codes a client can meet: ``channels_example`` for those this
    project sends (its ``CLOSE_*`` constants, and the codes it closes with), ``daphne`` for those
    daphne's WebSocket protocol sends, ``autobahn`` for the rest autobahn may send, and ``—`` for
    the codes no one may send in a close frame (1006: the connection dropped)."""
    import autobahn.websocket.protocol
    import daphne.ws_protocol

    ours = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                    and isinstance(node.value.value, int):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id.startswith("CLOSE_"):
                        ours.add(node.value.value)
        for call in ast.walk(tree):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "close_with" \
                    and call.args and isinstance(call.args[0], ast.Constant):
                ours.add(call.args[0].value)
    daphne_source = ast.parse(Path(daphne.ws_protocol.__file__).read_text(encoding="utf-8"))
    sent_by_daphne = {node.value for node in ast.walk(daphne_source)
                      if isinstance(node, ast.Constant) and isinstance(node.value, int) and 1000 <= node.value < 5000}
    protocol = autobahn.websocket.protocol.WebSocketProtocol
    defined = {value for name, value in vars(protocol).items() if name.startswith("CLOSE_STATUS_CODE_")}
    allowed = set(protocol.CLOSE_STATUS_CODES_ALLOWED)
    return {"channels_example": ours, "daphne": sent_by_daphne, "autobahn": allowed, "—": defined - allowed}


def close_code_differences(rows):
    """What is wrong in a close-code table's ``(code, who)`` rows: codes this project or daphne
    sends that no row names, rows naming a code their sender does not send, and repeats."""
    known = close_codes()
    problems, seen = [], set()
    for code, who in rows:
        if (code, who) in seen:
            problems.append("close code %s is in the table twice for %s" % (code, who))
        seen.add((code, who))
        if who not in known:
            problems.append("close code %s: %r is not a sender (%s)" % (code, who, ", ".join(known)))
        elif not code.isdigit() or int(code) not in known[who]:
            problems.append("close code %s: %s sends no such code" % (code, who))
    named = {(int(code), who) for code, who in rows if code.isdigit()}
    for who in ("channels_example", "daphne"):
        for code in sorted(known[who]):
            if (code, who) not in named:
                problems.append("close code %d (%s) is not in the table" % (code, who))
    return problems


def close_reasons():
    """``{code: set of reasons}`` for the close frames this project and daphne send: the table of
    channels_example.interface.closes, and the literal reasons of the bounds' ``close_with`` calls."""
    from channels_example.interface import closes

    reasons = {code: {reason} for code, reason in closes.REASONS.items()}
    for path in sorted(PACKAGE.rglob("*.py")):
        for call in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "close_with" \
                    and len(call.args) == 2 and isinstance(call.args[0], ast.Constant) and _string(call.args[1]):
                reasons.setdefault(call.args[0].value, set()).add(_string(call.args[1]))
    return reasons


def close_reason_differences(rows):
    """Each close code of ours or daphne's whose reason (a ``code span`` in the row's reason cell)
    the table does not give, from ``(code, reason cell)`` rows."""
    cells = {code: set(re.findall(r"`([^`]+)`", cell)) for code, cell in rows}
    return ["close code %d: the table does not give its reason %r" % (code, reason)
            for code, reasons in sorted(close_reasons().items()) for reason in sorted(reasons)
            if reason not in cells.get(str(code), set())]


# ---------------------------------------------------------------- environment variables

ENVIRON_METHODS = {"get", "setdefault", "pop"}


def _environment_read(node, names):
    """The argument node naming the variable, if ``node`` reads the environment."""
    if isinstance(node, ast.Call):
        target = _qualified(node.func, names)
        if target == "os.getenv" or (target and target.startswith("os.environ.")
                                     and target.rsplit(".", 1)[1] in ENVIRON_METHODS):
            return node.args[0] if node.args else None
    if isinstance(node, ast.Subscript) and _qualified(node.value, names) == "os.environ":
        return node.slice
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn)) \
            and _qualified(node.comparators[0], names) == "os.environ":
        return node.left
    return None


def environment_reads(source, module="settings"):
    """The environment variables ``source`` (a Python module's text) reads, in the order it first
    reads them; literal names only, directly or through a helper function of the module."""
    tree = ast.parse(source)
    names = _imports(tree, module)
    helpers = {}  # function name -> index of the parameter it reads the environment with
    for function in (node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)):
        parameters = [argument.arg for argument in function.args.args]
        for node in ast.walk(function):
            argument = _environment_read(node, names)
            if isinstance(argument, ast.Name) and argument.id in parameters:
                helpers[function.name] = parameters.index(argument.id)
    found = []
    for node in ast.walk(tree):
        argument = _environment_read(node, names)
        if argument is None and isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in helpers and len(node.args) > helpers[node.func.id]:
            argument = node.args[helpers[node.func.id]]
        if _string(argument) is not None:
            found.append((node.lineno, node.col_offset, _string(argument)))
    ordered = []
    for _, _, name in sorted(found):
        if name not in ordered:
            ordered.append(name)
    return ordered


def settings_environment():
    """The environment variables channels_example/settings.py reads, in its order."""
    return environment_reads(SETTINGS.read_text(encoding="utf-8"))


DEFAULTED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?])([^}]*)\}")
# A command of a script: the start of a line, or what follows ; && || and the keywords before a command.
COMMAND_START = re.compile(r"(?:^|;|&&|\|\|)\s*(?:(?:then|else|do|export|local)\s+)*", re.MULTILINE)
ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=(\"[^\"]*\"|'[^']*'|[^\s;]*)")


def _assignments(text):
    """``(name, value)`` for each variable a script sets: ``NAME=value`` words where a command starts."""
    found = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        for start in COMMAND_START.finditer(line):
            position = start.end()
            while True:
                assignment = ASSIGNMENT.match(line, position)
                if assignment is None:
                    break
                found.append((assignment.group(1), assignment.group(2).strip("\"'")))
                position = assignment.end()
                while position < len(line) and line[position] in " \t":
                    position += 1
    return found


def script_inputs(scripts=None):
    """``{name: (default, [scripts that read it])}`` for the variables scripts take from the
    environment: read as ``${NAME:-default}`` or ``${NAME:?why}`` (default ``None``: required),
    and never set by a script but from themselves (``PORT="${PORT:-8000}"``)."""
    inputs, assigned = {}, set()
    for script in scripts or SCRIPTS:
        text = script.read_text(encoding="utf-8")
        assigned.update(name for name, value in _assignments(text) if not value.startswith("${%s:" % name))
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        for name, form, default in DEFAULTED.findall(code):
            entry = inputs.setdefault(name, [None if "?" in form else default, []])
            shown = str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else script.name
            if shown not in entry[1]:
                entry[1].append(shown)
    return {name: tuple(entry) for name, entry in inputs.items() if name not in assigned}


def script_rows():
    """The rows the scripts' table must hold: ``(`NAME`, default, read by)`` for each variable the
    scripts read that settings.py does not (those are in the Environment table)."""
    rows = []
    for name, (default, readers) in script_inputs().items():
        if name in settings_environment():
            continue
        rows.append(("`%s`" % name, "required" if default is None else ("`%s`" % default if default else "—"),
                     ", ".join("`%s`" % reader for reader in readers)))
    return rows


# ---------------------------------------------------------------- names the docs may cite

def _setting_keys(value, found):
    """Every UPPER_CASE key inside a setting's value (CHANNEL_LAYERS' CONFIG, DATABASES' PASSWORD)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and key.isupper():
                found.add(key)
            _setting_keys(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _setting_keys(item, found)
    return found


def project_constants():
    """UPPER_CASE names the project's Python defines at module or class level."""
    found = set()
    for path in python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bodies = [tree.body] + [node.body for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
        for body in bodies:
            for node in body:
                targets = node.targets if isinstance(node, ast.Assign) else (
                    [node.target] if isinstance(node, ast.AnnAssign) else [])
                for target in targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name) and UPPER.fullmatch(name.id):
                            found.add(name.id)
    return found


def known_names():
    """``{name: where it is defined}`` for every UPPER_CASE name a doc may write in backticks."""
    import redis
    from django.conf import settings
    from redis.connection import BaseParser

    names = {}

    def add(found, where):
        for name in found:
            names.setdefault(name, where)

    add((name for name in dir(settings) if UPPER.fullmatch(name)), "a Django setting")
    for path in python_files():
        add(environment_reads(path.read_text(encoding="utf-8"), _module_name(path)),
            "an environment variable %s reads" % path.relative_to(ROOT))
    add(script_inputs(), "an environment variable scripts/ read")
    add(project_constants(), "a constant of the project's code")
    keys = set()
    for name in dir(settings):
        if UPPER.fullmatch(name):
            _setting_keys(getattr(settings, name), keys)
    add(keys, "a key inside a setting")
    add((name.upper() for name in dir(redis.StrictRedis) if name.isalpha() and name.islower()), "a Redis command")
    add(BaseParser.EXCEPTION_CLASSES, "a Redis error reply")
    add(http.HTTPMethod.__members__, "an HTTP method")
    add(signal.Signals.__members__, "a signal")
    add(logging.getLevelNamesMapping(), "a log level")
    add((name for name in dir(socket) if UPPER.fullmatch(name)), "a socket option")
    return names


# Two characters at least: no setting has one (and `Q` is a class).
UPPER = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*(?<=..)")
CODE_SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
FENCED = re.compile(r"^[ \t]*(```|~~~).*?^[ \t]*\1[ \t]*$", re.MULTILINE | re.DOTALL)
LEADING_ASSIGNMENTS = re.compile(r"((?:[A-Z][A-Z0-9_]*=\S*\s+)*[A-Z][A-Z0-9_]*=\S*)(?:\s|$)")


def cited_names(markdown):
    """``(line, name)`` for each UPPER_CASE name a document writes as a whole code span
    (`` `NAME` ``), as the variables a span sets first (`` `NAME=value command` ``), or as
    ``settings.NAME``. Fenced blocks are left out: they are run, not read."""
    text = FENCED.sub(lambda block: "\n" * block.group(0).count("\n"), markdown)
    cited = []
    for span in CODE_SPAN.finditer(text):
        line = text.count("\n", 0, span.start()) + 1
        content = span.group(2).strip()
        if UPPER.fullmatch(content):
            cited.append((line, content))
            continue
        assignments = LEADING_ASSIGNMENTS.match(content)
        if assignments:
            cited += [(line, part.split("=", 1)[0]) for part in assignments.group(1).split()]
        cited += [(line, name) for name in re.findall(r"\bsettings\.([A-Z][A-Z0-9_]*)\b", content)]
    return cited


# ---------------------------------------------------------------- a document's tables and examples

TABLE = re.compile(r"<!--\s*drift:\s*(?P<name>[\w-]+)\s*-->\n(?P<body>.*?)\n<!--\s*/drift\s*-->", re.DOTALL)


class DocumentError(AssertionError):
    """A document lacks what a check needs (its table's markers)."""


def table(markdown, name):
    """The rows of the table marked ``name``, each a list of its cells' text."""
    marked = [match for match in TABLE.finditer(markdown) if match.group("name") == name]
    if len(marked) != 1:
        raise DocumentError("expected one table between <!-- drift: %s --> and <!-- /drift -->, found %d"
                            % (name, len(marked)))
    rows = []
    for line in marked[0].group("body").splitlines():
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in re.split(r"(?<!\\)\|(?=(?:[^`]*`[^`]*`)*[^`]*$)", line.strip())[1:-1]]
        if all(re.fullmatch(r":?-+:?", cell) for cell in cells):
            continue
        rows.append(cells)
    return rows[1:]  # the header


def names_in(cell):
    """The names in backticks in a cell (```SECRET_KEY```, or ```REDIS_SENTINELS`, `REDIS_SERVICES```)."""
    return re.findall(r"`([^`]+)`", cell)


def table_differences(found, expected, what):
    """Each row of ``expected`` not in ``found``, each of ``found`` not in ``expected``, and each
    row ``found`` has twice: ``found`` and ``expected`` are lists of tuples of cells."""
    problems = ["%s %s is not in the table" % (what, " | ".join(row)) for row in expected if row not in found]
    problems += ["%s %s is in the table, but not in the code" % (what, " | ".join(row))
                 for row in found if row not in expected]
    problems += ["%s %s is in the table twice" % (what, " | ".join(row))
                 for index, row in enumerate(found) if row in found[:index]]
    return problems


def json_examples(markdown):
    """``(line, value)`` for every JSON value in the document's ```json blocks (several to a block)."""
    found = []
    for block in re.finditer(r"^```json[ \t]*\n(.*?)^```[ \t]*$", markdown, re.MULTILINE | re.DOTALL):
        text, position = block.group(1), 0
        first_line = markdown.count("\n", 0, block.start(1)) + 1
        decoder = json.JSONDecoder()
        while True:
            while position < len(text) and text[position].isspace():
                position += 1
            if position == len(text):
                break
            line = first_line + text.count("\n", 0, position)
            try:
                value, position = decoder.raw_decode(text, position)
            except ValueError as error:
                found.append((line, error))
                break
            found.append((line, value))
    return found


def example_problems(value, real, extras):
    """What is wrong with one JSON example of a server frame: ``real`` maps each frame kind
    (``welcome``, ``history``, ``history+resume``, ``message``, ...) to the fields of the frame the
    code builds; ``extras`` maps each error code to the fields its error frame adds."""
    if not isinstance(value, dict) or "type" not in value:
        return ["not a server frame (a JSON object with a \"type\")"]
    kind = value["type"] + ("+resume" if value["type"] == "history" and "since" in value else "")
    if kind not in real:
        return ["no frame of type %r exists" % value["type"]]
    expected = set(real[kind])
    if kind == "error":
        if value.get("code") not in extras:
            return ["no error frame has the code %r" % value.get("code")]
        expected |= extras[value["code"]]
    problems = []
    if set(value) != expected:
        problems.append("a frame of type %r has the fields %s, not %s" % (kind, sorted(expected), sorted(value)))
    for item in value.get("messages", []) if kind.startswith("history") else []:
        if not isinstance(item, dict) or set(item) != set(real["message"]):
            problems.append("a history item has the fields of a message frame, %s, not %s"
                            % (sorted(real["message"]), sorted(item) if isinstance(item, dict) else item))
    return problems


def client_frame_problems(value, parse):
    """What is wrong with one JSON example of a client frame: ``parse(text)`` is the server's
    parser (``protocol.parse_frame`` on a text frame); it must take the frame, and each of its
    fields must matter (without it the frame is refused or means something else)."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        meant = parse(text)
    except Exception as refused:
        return ["the server refuses %s: %s" % (text, refused)]
    if not isinstance(value, dict):
        return []
    problems = []
    for field in value:
        without = json.dumps({key: item for key, item in value.items() if key != field}, ensure_ascii=False)
        try:
            same = parse(without) == meant
        except Exception:
            same = False
        if same:
            problems.append("the field %r of %s changes nothing: the server ignores it" % (field, text))
    return problems
