"""The docs state what the code does: every code, variable, setting and frame they name is the code's.

* docs/protocol.md (and its Chinese twin): its error-code table names every code an error
  frame can carry and no other; its close-code table every code this project and daphne
  send, each with who sends it and the reason its close frame carries; its JSON examples are frames the server builds, field
  for field, or frames it takes.
* docs/deploying.md (and its twin): its Environment table names every variable
  settings.py reads and no other; its scripts' table every variable scripts/ read
  besides, with its default.
* docs/security.md (and its twin): the views its Django advisories were judged against are
  every URL of channels_example/urls.py, each named by its path or its name.
* Every document: an UPPER_CASE name it writes in backticks exists (a setting, an
  environment variable something here reads, a constant of the code, or a word of Redis,
  HTTP or signals), but for the few listed in NOT_SETTINGS, each with its reason.

The facts come from the code's source (tests/docfacts.py). The second half of this file
feeds the checks wrong tables and examples, to show that each can fail.
"""
import json
import re

import pytest

from channels_example.chat import history, presence, protocol
from channels_example.chat.identity import Speaker
from channels_example.chat.rooms import Room
from tests import docfacts
from tests.docfacts import ROOT

PROTOCOL = [ROOT / "docs" / "protocol.md", ROOT / "docs" / "zh-CN" / "protocol.md"]
DEPLOYING = [ROOT / "docs" / "deploying.md", ROOT / "docs" / "zh-CN" / "deploying.md"]
DOCUMENTS = [ROOT / "README.md", ROOT / "README.zh-CN.md"] + sorted((ROOT / "docs").rglob("*.md"))

# UPPER_CASE names a document may write in backticks that are none of the project's or its
# libraries' names: {name: (the document, in either language, and why)}.
NOT_SETTINGS = {
    "MOVED": ("deploying.md", "a Redis Cluster redirection, which asgi_redis cannot follow"),
    "ASK": ("deploying.md", "a Redis Cluster redirection, which asgi_redis cannot follow"),
    "DATA_UPLOAD_MAX_NUMBER_FILES": ("security.md", "Django 3.2.18's setting: Django 2.2 has none"),
    "OOM": ("operations.md", "how Redis's error reply starts when maxmemory is reached"),
}


def shown(path):
    return str(path.relative_to(ROOT))


def read(path):
    return path.read_text(encoding="utf-8")


def error_code_rows(markdown):
    return [(docfacts.names_in(row[0])[0] if docfacts.names_in(row[0]) else row[0],) for row in
            docfacts.table(markdown, "error-codes")]


def close_code_rows(markdown):
    """``(code, who)`` for each sender a row names: "`channels_example`, `daphne`" (or, in Chinese,
    "`channels_example`、`daphne`") is two senders of one code."""
    return [(row[0], who.strip().strip("`")) for row in docfacts.table(markdown, "close-codes")
            for who in re.split("[,、]", row[1])]


def close_reason_rows(markdown):
    return [(row[0], row[2]) for row in docfacts.table(markdown, "close-codes")]


def environment_rows(markdown):
    return [(name,) for row in docfacts.table(markdown, "environment") for name in docfacts.names_in(row[0])]


def script_rows(markdown):
    return [tuple(row[:3]) for row in docfacts.table(markdown, "script-environment")]


# ---------------------------------------------------------------- the docs as they are

@pytest.mark.parametrize("document", PROTOCOL, ids=shown)
def test_the_error_code_table_names_every_code_an_error_frame_can_carry_and_no_other(document):
    expected = [(code,) for code in sorted(docfacts.error_codes())]
    assert docfacts.table_differences(error_code_rows(read(document)), expected, "error code") == []


@pytest.mark.parametrize("document", PROTOCOL, ids=shown)
def test_the_close_code_table_names_every_code_this_project_and_daphne_send_each_with_its_sender(document):
    assert docfacts.close_code_differences(close_code_rows(read(document))) == []


@pytest.mark.parametrize("document", PROTOCOL, ids=shown)
def test_the_close_code_table_gives_the_reason_each_close_frame_of_ours_and_daphnes_carries(document):
    assert docfacts.close_reason_differences(close_reason_rows(read(document))) == []


@pytest.mark.parametrize("document", DEPLOYING, ids=shown)
def test_the_environment_table_names_every_variable_settings_py_reads_and_no_other(document):
    expected = [(name,) for name in docfacts.settings_environment()]
    assert docfacts.table_differences(environment_rows(read(document)), expected, "variable") == []


@pytest.mark.parametrize("document", DEPLOYING, ids=shown)
def test_the_scripts_table_names_every_other_variable_the_scripts_read_with_its_default(document):
    assert docfacts.table_differences(script_rows(read(document)), docfacts.script_rows(), "variable") == []


SECURITY = [ROOT / "docs" / "security.md", ROOT / "docs" / "zh-CN" / "security.md"]


def advisories_section(markdown):
    """The section on Django's advisories: from its heading to the next one of its level."""
    return re.search(r"^## (?:Django advisories|2.2.28 之后的 Django 安全公告).*?(?=^## |\Z)", markdown, re.M | re.S).group(0)


@pytest.mark.parametrize("document", SECURITY, ids=shown)
def test_the_advisories_were_judged_against_every_url_the_project_has(document):
    from channels_example.urls import urlpatterns
    section = advisories_section(read(document))
    unnamed = [str(url.pattern) for url in urlpatterns
               if "`/%s`" % url.pattern not in section and "`%s`" % url.name not in section]
    assert unnamed == []


@pytest.fixture(scope="module")
def known_names():
    return docfacts.known_names()


@pytest.mark.parametrize("document", DOCUMENTS, ids=shown)
def test_every_upper_case_name_a_document_writes_in_backticks_exists(document, known_names):
    allowed = {name for name, (where, _) in NOT_SETTINGS.items() if document.name == where}
    unknown = [(line, name) for line, name in docfacts.cited_names(read(document))
               if name not in known_names and name not in allowed]
    assert unknown == [], "no setting, environment variable or constant has these names"


def test_each_name_allowed_without_a_definition_is_still_cited_and_still_undefined(known_names):
    for name, (where, why) in NOT_SETTINGS.items():
        cited = [document for document in DOCUMENTS if document.name == where
                 and name in {cited for _, cited in docfacts.cited_names(read(document))}]
        assert cited, "%s is no longer cited in %s: remove it from NOT_SETTINGS" % (name, where)
        assert name not in known_names, "%s is %s now: remove it from NOT_SETTINGS" % (name, known_names.get(name))


@pytest.fixture
def real_frames(db):
    """The fields of each frame the server builds, built by the code that builds them: a guest
    joining a room (welcome, history), resuming, a message, a leave, a moderator's actions."""
    room, ann = Room("lobby"), Speaker("ann", False, False, "socket:daphne.response.test!ann")
    welcome, joined_history, _ = room.join("daphne.response.test!ann", ann)
    resumed = history.history_frame(room, since=0)
    message = protocol.message_frame(protocol.chat_message(room.name, ann, "hello world"), 1)
    left = presence.leave(room, "daphne.response.test!ann")
    frames = {"welcome": welcome, "history": joined_history, "history+resume": resumed, "message": message,
              "presence": left, "deleted": protocol.deleted(room.name, 1, "mod"),
              "muted": protocol.muted(room.name, "ann", 300, "mod"), "error": protocol.error("bad_message", "x")}
    return {kind: set(json.loads(frame["text"])) for kind, frame in frames.items()}


def parse_text(text):
    return protocol.parse_frame({"text": text})


@pytest.mark.parametrize("document", PROTOCOL, ids=shown)
def test_every_json_example_is_a_frame_the_server_builds_or_takes_field_for_field(document, real_frames):
    examples = docfacts.json_examples(read(document))
    problems = []
    for line, value in examples:
        if isinstance(value, Exception):
            problems.append((line, "not JSON: %s" % value))
        elif isinstance(value, dict) and "type" in value:
            problems += [(line, problem) for problem in docfacts.example_problems(value, real_frames,
                                                                                 docfacts.error_codes())]
        else:
            problems += [(line, problem) for problem in docfacts.client_frame_problems(value, parse_text)]
    assert len(examples) >= 10 and problems == []


def test_the_chinese_protocol_shows_the_same_frames_as_the_english_one():
    english, chinese = (docfacts.json_examples(read(document)) for document in PROTOCOL)
    assert [value for _, value in chinese] == [value for _, value in english]


# ---------------------------------------------------------------- each check can fail

ERROR_TABLE = """
<!-- drift: error-codes -->
| code | when |
|---|---|
%s
<!-- /drift -->
"""


def test_an_error_code_table_missing_a_code_or_naming_one_the_code_lacks_is_reported():
    codes = sorted(docfacts.error_codes())
    rows = "\n".join("| `%s` | ... |" % code for code in codes if code != "muted") + "\n| `too_loud` | ... |"
    found = error_code_rows(ERROR_TABLE % rows)
    assert docfacts.table_differences(found, [(code,) for code in codes], "error code") == [
        "error code muted is not in the table", "error code too_loud is in the table, but not in the code"]


def test_a_code_twice_in_a_table_is_reported():
    codes = sorted(docfacts.error_codes())
    rows = "\n".join("| `%s` | ... |" % code for code in codes + ["muted"])
    assert docfacts.table_differences(error_code_rows(ERROR_TABLE % rows), [(code,) for code in codes],
                                      "error code") == ["error code muted is in the table twice"]


def test_a_close_code_table_with_a_code_missing_a_wrong_sender_or_an_invented_code_is_reported():
    rows = [("4400", "channels_example"), ("1008", "channels_example"), ("1013", "channels_example"),
            ("1009", "channels_example"), ("1000", "daphne"), ("1009", "autobahn"), ("4999", "autobahn"),
            ("1006", "—"), ("1007", "nginx"), ("1008", "channels_example")]
    assert docfacts.close_code_differences(rows) == [
        "close code 1009: channels_example sends no such code",
        "close code 4999: autobahn sends no such code",
        "close code 1007: 'nginx' is not a sender (channels_example, daphne, autobahn, —)",
        "close code 1008 is in the table twice for channels_example",
        "close code 4401 (channels_example) is not in the table",
        "close code 1013 (daphne) is not in the table",
    ]


def test_a_close_code_row_may_name_two_senders_in_either_language():
    table = "<!-- drift: close-codes -->\n| code | who | meaning |\n|---|---|---|\n%s\n<!-- /drift -->\n"
    for row in ("| 1013 | `channels_example`, `daphne` | ... |", "| 1013 | `channels_example`、`daphne` | ... |"):
        assert close_code_rows(table % row) == [("1013", "channels_example"), ("1013", "daphne")]


def test_a_close_code_table_with_a_reason_missing_or_changed_is_reported():
    rows = [(str(code), " or ".join("`%s`" % reason for reason in sorted(reasons)))
            for code, reasons in docfacts.close_reasons().items() if code != 4401]
    rows = [(code, cell.replace("too fast", "too quick")) for code, cell in rows]
    assert docfacts.close_reason_differences(rows) == [
        "close code 1008: the table does not give its reason 'rate limit: too many frames, too fast'",
        "close code 4401: the table does not give its reason "
        "'signed out: the user logged out, changed the password or was made inactive'"]


def test_an_environment_table_with_a_wrong_variable_is_reported():
    names = docfacts.settings_environment()
    rows = "\n".join("| `%s` | ... | ... |" % name for name in names if name != "REDIS_URL")
    markdown = "<!-- drift: environment -->\n| variable | value | why |\n|---|---|---|\n%s\n" \
               "| `REDIS_HOST`, `DEBUG_TOOLBAR` | ... | ... |\n<!-- /drift -->\n" % rows
    assert docfacts.table_differences(environment_rows(markdown), [(name,) for name in names], "variable") == [
        "variable REDIS_URL is not in the table", "variable REDIS_HOST is in the table, but not in the code",
        "variable DEBUG_TOOLBAR is in the table, but not in the code"]


def test_a_scripts_table_with_a_wrong_default_is_reported():
    rows = [row if row[0] != "`PORT`" else ("`PORT`", "`8080`", row[2]) for row in docfacts.script_rows()]
    markdown = "<!-- drift: script-environment -->\n| variable | default | read by | what |\n|---|---|---|---|\n" \
               + "".join("| %s | %s | %s | ... |\n" % row for row in rows) + "<!-- /drift -->\n"
    assert docfacts.table_differences(script_rows(markdown), docfacts.script_rows(), "variable") == [
        "variable `PORT` | `8000` | `scripts/prod`, `scripts/run` is not in the table",
        "variable `PORT` | `8080` | `scripts/prod`, `scripts/run` is in the table, but not in the code"]


def test_a_table_without_its_markers_is_reported():
    with pytest.raises(docfacts.DocumentError, match="one table between <!-- drift: environment -->"):
        docfacts.table("| variable | why |\n|---|---|\n| `DEBUG` | ... |\n", "environment")


def test_a_document_citing_a_setting_or_variable_that_does_not_exist_is_reported(known_names):
    markdown = ("`MAX_MESSAGE_LENGTH` is 2000, `MAX_MESAGE_LENGTH` is a typo, `settings.HISTORY_LENGHT` another;\n"
                "`CHAT_GUESTS=0 scripts/run` sets a real one, `CHAT_GUEST=0 PORT=8001 scripts/run` a wrong one,\n"
                "and `HINCRBY`, `SIGSTOP` and `GET` are Redis's, a signal and HTTP's.\n"
                "```sh\nNOT_CHECKED_IN_BLOCKS=1 true\n```\n")
    cited = docfacts.cited_names(markdown)
    assert [(line, name) for line, name in cited if name not in known_names] == [
        (1, "MAX_MESAGE_LENGTH"), (1, "HISTORY_LENGHT"), (2, "CHAT_GUEST")]


def test_an_example_with_a_field_too_many_or_too_few_an_unknown_code_or_not_json_is_reported(real_frames):
    markdown = """
```json
{"type": "welcome", "room": "lobby", "handle": "ann", "signed_in": false, "staff": false, "members": ["ann"]}
{"type": "message", "room": "lobby", "handle": "ann", "signed_in": false, "sender": "", "message": "hi",
 "ts": 1, "seq": 1, "edited": false}
{"type": "error", "code": "too_loud", "detail": "..."}
{"type": "error", "code": "rate_limited", "detail": "too many messages: wait 0.2 s"}
{"type": "history", "room": "lobby", "messages": [{"seq": 1}], "upto": 1}
{"message": "hi", "colour": "red"}
{"action": "kick", "target": "bob"}
{"type": "presence", ...}
```
"""
    found = []
    for line, value in docfacts.json_examples(markdown):
        if isinstance(value, Exception):
            found.append((line, "not JSON"))
        elif isinstance(value, dict) and "type" in value:
            found += [(line, problem.split(":")[0]) for problem in
                      docfacts.example_problems(value, real_frames, docfacts.error_codes())]
        else:
            found += [(line, problem.split(":")[0]) for problem in docfacts.client_frame_problems(value, parse_text)]
    assert found == [
        (3, "a frame of type 'welcome' has the fields ['handle', 'members', 'members_signed_in', 'room', 'sender', "
            "'signed_in', 'staff', 'type'], not ['handle', 'members', 'room', 'signed_in', 'staff', 'type']"),
        (4, "a frame of type 'message' has the fields ['handle', 'message', 'room', 'sender', 'seq', 'signed_in', "
            "'ts', 'type'], not ['edited', 'handle', 'message', 'room', 'sender', 'seq', 'signed_in', 'ts', 'type']"),
        (6, "no error frame has the code 'too_loud'"),
        (7, "a frame of type 'error' has the fields ['code', 'detail', 'retry_after', 'type'], "
            "not ['code', 'detail', 'type']"),
        (8, "a history item has the fields of a message frame, ['handle', 'message', 'room', 'sender', 'seq', "
            "'signed_in', 'ts', 'type'], not ['seq']"),
        (9, "the field 'colour' of {\"message\""),
        (10, "the server refuses {\"action\""),
        (11, "not JSON"),
    ]


def test_environment_reads_are_found_however_the_module_reads_them():
    source = '''
import os
from os import environ as env_vars


def env(name, default=None):
    """A helper, as some settings modules have."""
    return os.environ.get(name, default)


DEBUG = os.environ.get("DEBUG", "0") == "1"
SECRET_KEY = os.environ["SECRET_KEY"]
HOSTS = os.getenv("ALLOWED_HOSTS", "")
REDIS = env("REDIS_URL")
SERVER = "CHANNELS_EXAMPLE_SERVER" in os.environ
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "x.settings")
TWICE = os.environ.get("DEBUG")
NOT_A_READ = dict(os.environ, PORT="1")
'''
    assert docfacts.environment_reads(source) == [
        "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "REDIS_URL", "CHANNELS_EXAMPLE_SERVER", "DJANGO_SETTINGS_MODULE"]


def test_script_inputs_are_the_variables_read_with_a_default_that_no_script_sets(tmp_path):
    script = tmp_path / "prod"
    script.write_text('''#!/usr/bin/env bash
# PORT=9000 in a comment sets nothing
PORT="${PORT:-8000}"
: "${SECRET_KEY:?SECRET_KEY is not set}"
say "choose another with PORT=8001 $0"
if [ -n "${FLAG:-}" ]; then MODE="${MODE:-fast}"; else MODE=slow; fi
export DEBUG=0 WORKERS="${WORKERS:-2}"
''', encoding="utf-8")
    assert docfacts.script_inputs([script]) == {
        "PORT": ("8000", ["prod"]), "SECRET_KEY": (None, ["prod"]), "FLAG": ("", ["prod"]), "WORKERS": ("2", ["prod"])}


def test_error_codes_are_found_in_protocol_errors_their_subclasses_and_error_frames():
    sources = [
        ("channels_example.chat.protocol", '''
class ProtocolError(ValueError):
    pass


def error(code, detail, **extra):
    return {}


def muted_error(wait):
    return error("muted", "wait", retry_after=wait)
'''),
        ("channels_example.chat.rooms", '''
from channels_example.chat import protocol
from channels_example.chat.protocol import ProtocolError


class InvalidRoom(ProtocolError):
    def __init__(self, detail):
        super().__init__("invalid_room", detail)


def check(log):
    log.error("not a code: a log line")
    raise protocol.ProtocolError("bad_since", "since is a number")
'''),
    ]
    assert docfacts.error_codes(sources) == {"muted": {"retry_after"}, "invalid_room": set(), "bad_since": set()}
