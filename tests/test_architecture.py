"""The shape of the code: imports go one way, and the transport stands on its own.

The rules are in .importlinter (import-linter, the kept tool for exactly this); a
breach prints the import chain that breaks it.
"""
import subprocess
import sys
from pathlib import Path

import grimp
from django.conf import settings

from channels_example.chat import history, presence

ROOT = Path(__file__).resolve().parent.parent
# What the transport may import besides itself: the standard library and these.
TRANSPORT_MAY_IMPORT = {"redis", "asgiref", "asgi_redis", "twisted", "ormsgpack"}


def test_every_import_contract_is_kept():
    lint = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), str(ROOT / ".importlinter")],
                          cwd=ROOT, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "0 broken" in lint.stdout


def test_the_transport_imports_only_the_standard_library_redis_asgiref_asgi_redis_twisted_and_ormsgpack():
    graph = grimp.build_graph("channels_example", include_external_packages=True, cache_dir=None)
    imported = set()
    for module in graph.find_descendants("channels_example.layers") | {"channels_example.layers"}:
        imported |= {name.split(".")[0] for name in graph.find_modules_directly_imported_by(module)}
    outside = imported - {"channels_example"} - TRANSPORT_MAY_IMPORT - set(sys.stdlib_module_names)
    assert outside == set()
    own = {name for name in graph.find_modules_that_directly_import("channels_example.layers.gate")}
    assert all(name.startswith(("channels_example.chat", "channels_example.layers")) for name in own)


# settings.py is configuration read top to bottom, the one home of every setting with its reason:
# it grows with the settings, and splitting it would give a setting two homes.
NOT_CODE = {"channels_example/settings.py"}


def test_no_module_is_over_400_lines():
    long = {str(path.relative_to(ROOT)): count for path in (ROOT / "channels_example").rglob("*.py")
            if "migrations" not in path.parts and str(path.relative_to(ROOT)) not in NOT_CODE and (count := len(path.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}


def test_the_gated_streams_are_the_chats_own():
    assert settings.GATE_TRANSPORT["gate_streams"] == [history.STREAM, presence.STREAM]


def test_lua_lives_in_lua_files_each_headed_with_what_it_takes():
    in_python = [str(path.relative_to(ROOT)) for path in (ROOT / "channels_example").rglob("*.py")
                 if "redis.call(" in path.read_text(encoding="utf-8")]
    assert in_python == []
    for path in (ROOT / "channels_example").rglob("*.lua"):
        head = path.read_text(encoding="utf-8").split("\n\n")[0]
        assert head.startswith("-- %s: " % path.name), path
        assert "KEYS" in head or "ARGV" in head or "function" in head, path  # a script, or a library of functions
