"""Every relative link in the READMEs and docs/ leads to a file that exists, and every
``#anchor`` into a Markdown file to one of its headings (GitHub's rules for heading ids).
Every commit a document names (a short hash in backticks) is one of this repository's, so
``git show`` finds it.

Links to http(s):// and mailto: are not checked; links inside code are not links.
"""
import re
import subprocess
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
# [text](target) and ![alt](target), target optionally followed by a "title".
INLINE_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# [label]: target
REFERENCE = re.compile(r"^[ ]{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
HEADING = re.compile(r"^[ ]{0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")
EXTERNAL = re.compile(r"^(https?:|mailto:)", re.IGNORECASE)


def documents():
    """README.md, README.zh-CN.md and every Markdown file under docs/."""
    return [ROOT / "README.md", ROOT / "README.zh-CN.md"] + sorted((ROOT / "docs").rglob("*.md"))


def without_code(markdown):
    """The text with fenced code blocks and code spans blanked out."""
    return CODE_SPAN.sub("", FENCE.sub("", markdown))


def links(markdown):
    """Every link target in the text, in order, outside code."""
    text = without_code(markdown)
    found = [(match.start(), match.group(1)) for match in INLINE_LINK.finditer(text)]
    found += [(match.start(), match.group(1)) for match in REFERENCE.finditer(text)]
    return [target for _, target in sorted(found)]


def slug(heading):
    """GitHub's id for a heading: the rendered text, lower-cased, punctuation and symbols
    removed (letters, digits, marks, ``-`` and ``_`` stay), spaces turned into ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").lower()
    kept = (char for char in text
            if char in "-_ " or unicodedata.category(char)[0] in "LNM" or unicodedata.category(char) == "Pc")
    return "".join(kept).replace(" ", "-")


def anchors(markdown):
    """The ids GitHub gives the headings of a document (repeats get -1, -2, ...)."""
    seen, ids = {}, set(HTML_ANCHOR.findall(markdown))
    for heading in HEADING.findall(FENCE.sub("", markdown)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        ids.add(base if count == 0 else "%s-%d" % (base, count))
    return ids


def broken_links(document):
    """``(target, why)`` for every relative link in ``document`` that leads nowhere."""
    markdown = document.read_text(encoding="utf-8")
    broken = []
    for target in links(markdown):
        if EXTERNAL.match(target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (document.parent / unquote(path)).resolve() if path else document
        if not resolved.exists():
            broken.append((target, "no such file: %s" % resolved))
        elif anchor and resolved.suffix == ".md" and unquote(anchor) not in anchors(resolved.read_text(encoding="utf-8")):
            broken.append((target, "no heading #%s in %s" % (anchor, resolved.name)))
    return broken


@pytest.mark.parametrize("document", documents(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_resolves(document):
    assert document.exists(), "%s is missing" % document.relative_to(ROOT)
    assert broken_links(document) == []


# A commit's short name, in backticks, with a letter in it: `83920175`, all digits, is a number.
COMMIT = re.compile(r"`((?=[0-9a-f]*[a-f])[0-9a-f]{7,40})`")


def is_a_commit_here(name):
    return subprocess.run(["git", "cat-file", "-e", name + "^{commit}"], cwd=ROOT,
                          stderr=subprocess.DEVNULL).returncode == 0


@pytest.mark.parametrize("document", documents(), ids=lambda path: str(path.relative_to(ROOT)))
def test_every_commit_a_document_names_is_in_this_repository(document):
    named = COMMIT.findall(document.read_text(encoding="utf-8"))
    assert [name for name in named if not is_a_commit_here(name)] == []


def test_a_commit_that_is_not_here_is_not_one():
    assert is_a_commit_here(subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                                           stdout=subprocess.PIPE, universal_newlines=True).stdout.strip())
    assert not is_a_commit_here("0000000")


SAMPLE = """# Title

See [the guide](docs/guide.md), [a section](docs/guide.md#first-steps) and [here](#title).
![screenshot](docs/screenshot.png "The page") and <https://example.com>, [site](https://example.com),
[mail](mailto:someone@example.com).

`[not a link](in/code.md)` and

```
[also not](in/a/fence.md)
```

[ref]: docs/reference.md
"""


def test_links_are_found_outside_code_only():
    assert links(SAMPLE) == [
        "docs/guide.md", "docs/guide.md#first-steps", "#title", "docs/screenshot.png",
        "https://example.com", "mailto:someone@example.com", "docs/reference.md",
    ]


def test_heading_ids_follow_githubs_rules():
    assert slug("Replying: what `reply_channel.send` accepts") == "replying-what-reply_channelsend-accepts"
    assert slug("Ordering: the note's section 五, explained and fixed") == (
        "ordering-the-notes-section-五-explained-and-fixed")
    assert slug("三.进阶 —— Group") == "三进阶--group"
    assert slug("A [linked](x.md) heading") == "a-linked-heading"
    assert anchors("# Notes\n## Notes\n## Notes\n") == {"notes", "notes-1", "notes-2"}


def test_a_missing_file_and_a_missing_heading_are_reported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n## First steps\n", encoding="utf-8")
    (tmp_path / "docs" / "screenshot.png").write_bytes(b"")
    (tmp_path / "docs" / "reference.md").write_text("", encoding="utf-8")
    sample = tmp_path / "README.md"
    sample.write_text(SAMPLE, encoding="utf-8")
    assert broken_links(sample) == []

    sample.write_text(SAMPLE + "\n[gone](docs/gone.md) [wrong](docs/guide.md#last-steps) [self](#nowhere)\n",
                      encoding="utf-8")
    assert [target for target, _ in broken_links(sample)] == ["docs/gone.md", "docs/guide.md#last-steps", "#nowhere"]
