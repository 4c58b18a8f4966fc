"""The pages speak the reader's language, English or Simplified Chinese (Django's i18n).

The translations are locale/zh_Hans/LC_MESSAGES/django.po (templates) and djangojs.po
(static/*.js, through the JavaScript catalogue at /jsi18n/), compiled by the set-up with
Babel's pybabel (scripts/_setup.sh). What is checked here, in CI on every Python:

* every message of the sources is in the catalogues (``manage.py makemessages``, run on a
  copy, finds nothing new), and every one is translated, none fuzzy;
* the catalogues compile, with the same placeholders in each translation as in its message;
* the page translates every error code the server sends (tests/docfacts.py reads them from
  the code), by its code, and its stylesheet writes no words of its own;
* a reader's Accept-Language, or their choice on the switch, picks the language.
"""
import json
import re
import shutil
import subprocess
import sys
from io import BytesIO

import pytest
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from django.test import Client

from tests import docfacts
from tests.docrunner import ROOT

LOCALE = ROOT / "locale"
CATALOGUES = sorted(LOCALE.glob("*/LC_MESSAGES/*.po"))
# The flags the catalogues are made with: what makemessages reads, and how it writes them.
MAKEMESSAGES = ["--no-location", "--ignore=.venv*", "--ignore=staticfiles", "--ignore=tests", "--ignore=bench",
                "--ignore=docs", "--ignore=locale"]


def catalogue(path):
    with open(path, "rb") as po:
        return read_po(po)


def message_ids(path):
    return {message.id if isinstance(message.id, str) else tuple(message.id)
            for message in catalogue(path) if message.id}


def shown(path):
    return str(path.relative_to(ROOT))


def test_there_is_a_catalogue_for_the_templates_and_one_for_the_script():
    assert [shown(path) for path in CATALOGUES] == ["locale/zh_Hans/LC_MESSAGES/django.po",
                                                    "locale/zh_Hans/LC_MESSAGES/djangojs.po"]


@pytest.mark.parametrize("path", CATALOGUES, ids=shown)
def test_every_message_is_translated_and_none_is_fuzzy(path):
    untranslated = [message.id for message in catalogue(path) if message.id and (
        not all(message.string) if isinstance(message.string, tuple) else not message.string)]
    fuzzy = [message.id for message in catalogue(path) if message.id and message.fuzzy]
    assert (untranslated, fuzzy) == ([], [])


@pytest.mark.parametrize("path", CATALOGUES, ids=shown)
def test_each_catalogue_compiles_with_the_placeholders_of_its_messages(path):
    messages = catalogue(path)
    problems = [(message.id, [str(error) for error in errors]) for message, errors in messages.check()]
    assert problems == []
    write_mo(BytesIO(), messages)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """The catalogues as makemessages makes them from the sources now, in a copy of them."""
    copy = tmp_path_factory.mktemp("sources")
    for name in ("channels_example", "templates", "static", "locale"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    shutil.copy(ROOT / "manage.py", copy)
    for domain in ("django", "djangojs"):
        subprocess.run([sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "-d", domain] + MAKEMESSAGES,
                       cwd=copy, check=True, capture_output=True)
    return copy / "locale"


@pytest.mark.parametrize("path", CATALOGUES, ids=shown)
def test_the_catalogues_hold_every_message_of_the_sources_and_no_other(path, extracted):
    made = extracted / path.relative_to(LOCALE)
    assert message_ids(made) == message_ids(path), "run manage.py makemessages (flags: MAKEMESSAGES), then translate"


def refusal_codes():
    """The codes static/chat.js's refusal() has words for."""
    script = (ROOT / "static" / "chat.js").read_text(encoding="utf-8")
    body = re.search(r"\nfunction refusal\(.*?\n}\n", script, re.S).group(0)
    return set(re.findall(r'case "(\w+)":', body))


def test_the_stylesheet_writes_no_words_the_catalogues_would_not_translate():
    """CSS ``content`` can only say the same thing in every language: marks and punctuation, no words."""
    contents = re.findall(r"""content:\s*(["'])(.*?)\1""", (ROOT / "static" / "chat.css").read_text(encoding="utf-8"))
    assert [text for _, text in contents if re.search(r"[^\W\d_]", text)] == []


def test_the_page_has_words_for_every_error_code_the_server_sends():
    assert set(docfacts.error_codes()) - refusal_codes() == set()


def test_the_page_translates_no_code_the_server_does_not_send():
    assert refusal_codes() - set(docfacts.error_codes()) == set()


@pytest.mark.django_db
@pytest.mark.parametrize("accept_language, said", [("zh-CN,zh;q=0.9", "发送"), ("zh", "发送"), ("en-GB", "Send"),
                                                   ("fr", "Send"), ("", "Send")])
def test_the_browsers_language_chooses_the_page_language(accept_language, said):
    page = Client(HTTP_ACCEPT_LANGUAGE=accept_language).get("/")
    assert ">%s</button>" % said in page.content.decode("utf-8")


@pytest.mark.django_db
def test_the_language_switch_remembers_the_readers_choice():
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    switched = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/?room=lobby"})
    assert (switched.status_code, switched["Location"]) == (302, "/?room=lobby")
    assert '<html lang="zh-hans">' in client.get("/").content.decode("utf-8")
    assert "发送" in client.get("/").content.decode("utf-8")
    assert client.post("/i18n/setlang/", {"language": "xx-" + "y" * 600}).status_code == 302
    assert "发送" in client.get("/").content.decode("utf-8")


@pytest.mark.django_db
def test_the_scripts_catalogue_is_in_the_readers_language():
    catalogue_script = Client(HTTP_ACCEPT_LANGUAGE="zh-CN").get("/jsi18n/").content.decode("utf-8")
    assert json.dumps("连接断开，正在重新连接") in catalogue_script  # as the catalogue writes it: \uXXXX
