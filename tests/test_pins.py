"""The environment is exactly the pinned one, and the pins really work together."""
import os
from importlib import metadata

import msgpack
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _requirements(path):
    """Each requirement line of ``path`` (options such as ``-c`` and ``-r`` left out), parsed."""
    with open(os.path.join(ROOT, path), encoding="utf-8") as lines:
        for line in lines:
            line = line.split("#")[0].strip()
            if line and not line.startswith("-"):
                yield Requirement(line)


def _pins(path):
    """``{name: version}`` for the lines of ``path`` meant for this Python (a marker may exclude it)."""
    return {canonicalize_name(requirement.name): next(iter(requirement.specifier)).version
            for requirement in _requirements(path) if requirement.marker is None or requirement.marker.evaluate()}


RUNTIME = _pins("requirements.txt")
TESTS = _pins("tests/requirements.txt")


@pytest.mark.parametrize("name, version", sorted({**RUNTIME, **TESTS}.items()))
def test_installed_version_is_the_pinned_one(name, version):
    assert metadata.version(name) == version


def test_every_requirement_line_is_pinned_exactly():
    for path in ("requirements.txt", "tests/requirements.txt"):
        for requirement in _requirements(path):
            assert [spec.operator for spec in requirement.specifier] == ["=="], (path, str(requirement))


def test_a_line_for_other_pythons_is_not_installed():
    for requirement in _requirements("requirements.txt"):
        if requirement.marker is not None and not requirement.marker.evaluate():
            with pytest.raises(metadata.PackageNotFoundError):
                metadata.version(requirement.name)


def test_the_legacy_stack_is_the_one_the_mission_names():
    assert (RUNTIME["django"], RUNTIME["channels"], RUNTIME["daphne"], RUNTIME["asgiref"], RUNTIME["asgi-redis"]) == (
        "2.2.28", "1.1.8", "1.4.2", "1.1.2", "1.4.3",
    )


def test_msgpack_is_msgpack_python_which_asgi_redis_can_call():
    # msgpack>=1 would install over msgpack-python's files and drop unpackb's "encoding" argument.
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.version("msgpack")
    packed = msgpack.packb({"text": "你好"}, use_bin_type=True)
    assert msgpack.unpackb(packed, encoding="utf8") == {"text": "你好"}


def test_autobahn_is_below_the_release_that_requires_msgpack_1():
    major, minor = (int(part) for part in metadata.version("autobahn").split(".")[:2])
    assert (major, minor) < (25, 11)


def test_constraints_file_forbids_msgpack_1():
    with open(os.path.join(ROOT, "constraints.txt"), encoding="utf-8") as lines:
        assert "msgpack<1" in [line.strip() for line in lines]


def test_pip_finds_no_broken_requirement():
    import subprocess
    import sys

    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
