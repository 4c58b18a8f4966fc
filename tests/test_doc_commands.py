"""The docs' command blocks run as pasted, and the Chinese twins carry the same ones.

Each ```sh block of README.md and docs/*.md runs from the root of a user's tree (a copy of
the work tree whose venv holds the runtime requirements only, as scripts/run makes it), as
tests/docrunner.py describes (servers, short variants, a free port for 8000), and must
exit 0 and leave the work tree as it was. One test per document, so a failure names it.
"""
import os
import subprocess
import sys

import pytest

from tests import docrunner
from tests.docrunner import ROOT, DocError

ENGLISH = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))


def twin(document):
    """README.zh-CN.md for README.md, docs/zh-CN/X.md for docs/X.md."""
    if document.parent == ROOT:
        return ROOT / "README.zh-CN.md"
    return ROOT / "docs" / "zh-CN" / document.name


def shown(path):
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("document", ENGLISH, ids=shown)
def test_every_command_block_runs_as_pasted(document):
    timings = []
    try:
        with docrunner.user_tree() as tree:
            docrunner.run_document(tree / document.relative_to(ROOT), root=tree, timings=timings)
    finally:
        for block, seconds in timings:
            print("%s %s%.1f s" % (block.where, "(server, until it answered) " if block.server else "", seconds))


def test_every_english_document_has_a_chinese_twin():
    assert [shown(document) for document in ENGLISH if not twin(document).exists()] == []


@pytest.mark.parametrize("document", [document for document in ENGLISH if twin(document).exists()], ids=shown)
def test_a_chinese_twin_carries_its_documents_command_blocks_byte_for_byte(document):
    assert docrunner.signature(twin(document)) == docrunner.signature(document)


# The runner itself, on small documents in a repository of their own: it must be able to fail.

@pytest.fixture
def checkout(tmp_path):
    subprocess.run(["git", "init", "--quiet", str(tmp_path)], check=True)
    return tmp_path


def document(folder, text):
    path = folder / "guide.md"
    path.write_text(text, encoding="utf-8")
    return path


def refusal(guide, root, **options):
    """What run_document says when it fails ``guide`` (it must fail)."""
    with pytest.raises(DocError) as failure:
        docrunner.run_document(guide, root=root, **options)
    return str(failure.value)


def test_a_block_that_fails_fails_its_document_naming_the_line_and_showing_the_block(checkout):
    guide = document(checkout, "# Guide\n\n```sh\ntrue\n```\n\nThen:\n\n```sh\necho about to fail\nls /no/such/folder\n```\n")
    said = refusal(guide, checkout)
    assert "guide.md:9: the block exited with 2" in said
    assert "    ls /no/such/folder\n" in said
    assert "about to fail" in said


def test_a_block_that_dirties_the_work_tree_fails(checkout):
    guide = document(checkout, "# Guide\n\n```sh\necho '{}' > s1.json\n```\n")
    said = refusal(guide, checkout)
    assert "guide.md:3: the block changed the work tree" in said
    assert "?? s1.json" in said


def test_a_block_left_running_in_the_background_fails(checkout):
    guide = document(checkout, "```sh\nsleep 60 &\n```\n")
    said = refusal(guide, checkout)
    assert "guide.md:1: the block left processes running" in said


SERVED = """# A server

<!-- doc-test: server -->
```sh
python3 -m http.server 8000 --bind 127.0.0.1
```

The next block talks to it, on the same free port:

```sh
python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:8000/").status)'
```

This one takes minutes; the test runs a short variant:

<!-- doc-test: ci: echo short variant -->
```sh
sleep 600
```
"""


def test_a_server_serves_the_blocks_after_it_on_a_free_port_and_stops_on_ctrl_c(checkout):
    timings = []
    docrunner.run_document(document(checkout, SERVED), root=checkout, timings=timings)
    assert [(block.line, block.server, block.ci) for block, _ in timings] == [
        (4, True, None), (10, False, None), (17, False, "echo short variant")]


def test_a_server_that_ignores_ctrl_c_fails(checkout):
    stubborn = SERVED.replace("python3 -m http.server", "trap '' INT; python3 -m http.server")
    said = refusal(document(checkout, stubborn), checkout, stop_seconds=2)
    assert "guide.md:4: the server did not exit within 2 s of SIGINT" in said


def test_a_server_that_exits_before_it_answers_fails_with_its_output(checkout):
    guide = document(checkout, "<!-- doc-test: server -->\n```sh\necho port 8000 is in use >&2; exit 1\n```\n")
    said = refusal(guide, checkout)
    assert "guide.md:2: the server exited with 1 before" in said
    assert "is in use" in said
    assert "port 8000" not in said  # it ran, and is shown, with the free port


def test_markers_mark_a_sh_block_and_shell_blocks_are_spelled_sh(checkout):
    for text, why in [
        ("<!-- doc-test: server -->\nText.\n```sh\nscripts/run\n```\n", "not just before a ```sh fence"),
        ("<!-- doc-test: server -->\n```text\nscripts/run\n```\n", "before a ```text fence"),
        ("<!-- doc-test: serve -->\n```sh\nscripts/run\n```\n", "unknown doc-test directive 'serve'"),
        ("```bash\nscripts/run\n```\n", "```bash: write ```sh"),
    ]:
        with pytest.raises(DocError, match=why.replace("*", r"\*")):
            docrunner.blocks(document(checkout, text))


def test_blocks_are_found_with_their_markers_and_lines(checkout):
    found = docrunner.blocks(document(checkout, SERVED + "\n- in a list:\n\n  ```sh\n  echo indented\n  ```\n"
                                                  "\n````text\n```sh\nnot a block\n```\n````\n"))
    assert [(block.line, block.server, block.ci, block.code) for block in found] == [
        (4, True, None, "python3 -m http.server 8000 --bind 127.0.0.1\n"),
        (10, False, None, 'python3 -c \'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:8000/")'
                          '.status)\'\n'),
        (17, False, "echo short variant", "sleep 600\n"),
        (23, False, None, "echo indented\n"),
    ]


def test_ports_are_replaced_where_written_and_not_inside_longer_numbers():
    assert docrunner.substitute("PORT=8000 x:8000/ -p 6379 18000 80001 63790",
                                {"8000": 41000, "6379": 41001}) == "PORT=41000 x:41000/ -p 41001 18000 80001 63790"


def test_blocks_run_without_the_chats_environment_nor_the_test_venv(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("PORT", "1")
    environment = docrunner.fresh_environment()
    assert "REDIS_URL" not in environment and "PORT" not in environment and "SECRET_KEY" not in environment
    assert environment["PATH"]
    assert os.path.join(sys.prefix, "bin") not in environment["PATH"].split(os.pathsep)


WEBSOCKETS = """# A tool

```sh
.venv/bin/python -c 'import websockets; print("the client is here")'
```
"""
INSTALLED_FIRST = WEBSOCKETS.replace("```sh\n", "```sh\n.venv/bin/pip install --quiet -r scripts/requirements.txt\n")


def test_a_tools_requirement_is_not_in_a_users_venv_until_the_document_installs_it():
    with docrunner.user_tree() as tree:
        said = refusal(document(tree, WEBSOCKETS), tree)
        assert "guide.md:3: the block exited with 1" in said
        assert "No module named 'websockets'" in said
        docrunner.run_document(document(tree, INSTALLED_FIRST), root=tree)


def test_port_is_the_free_port_that_replaces_8000_as_scripts_run_listens_on_port(checkout):
    docrunner.run_document(document(checkout, '```sh\ntest "$PORT" = 8000 && test "$PORT" != 6379\n```\n'), root=checkout)
