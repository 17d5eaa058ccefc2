"""`make test` runs from a plain clone with nothing beside it.

The workspace keeps a Backstage reference peer in a shared folder beside the project; a
clone elsewhere (CI, a contributor's machine) has no such folder. The compatibility test
therefore uses the copies in ``tests/compat`` (``fixtures/README.md``), and only the
scripts that run a real Backstage, outside ``make test``, may name the shared folder.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Spelled in pieces so that this file, which make test also runs, is scanned like any other.
SHARED_NAMES = (b"../" + b"shared", b"shared/" + b"peers", b"/work/" + b"shared")
# They record or compare with a real Backstage and are not run by make test.
LIVE_ONLY = ("scripts/record-compat-fixtures.sh", "scripts/compat-live.sh")
# Prose may say where the fixtures came from; it is never read by a test.
PROSE = "README.md"


def _git(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def _used_by_make_test() -> list[str]:
    # Untracked files count too: they would be committed next.
    listed = _git(
        "ls-files",
        "--cached",
        "--others",
        "--exclude-standard",
        "--",
        "Makefile",
        "pyproject.toml",
        ".ci",
        "scripts",
        "tests",
    ).splitlines()
    return [
        path
        for path in listed
        if path not in LIVE_ONLY and Path(path).name != PROSE and (ROOT / path).is_file()
    ]


def _names_shared(path: str) -> bool:
    content = (ROOT / path).read_bytes()
    return any(name in content for name in SHARED_NAMES)


def test_nothing_make_test_uses_names_the_shared_folder() -> None:
    used = _used_by_make_test()
    # The scan covers what matters: the make file, the compatibility test and its data.
    assert {
        "Makefile",
        "tests/compat/test_backstage_peer.py",
        "tests/compat/fixtures/transcripts.md",
        "tests/compat/driver/drive.py",
        "tests/compat/peer_idp/idp.mjs",
    } <= set(used)
    assert [path for path in used if _names_shared(path)] == []


def test_the_scan_finds_the_recording_scripts_default_peer() -> None:
    # The spellings above are the ones actually written, so the scan would catch them.
    assert _names_shared("scripts/record-compat-fixtures.sh")


# tests/ is a namespace package: it has no __file__, its conftest module has.
_PRINT_ORIGINS = """
import importlib.util
for name in ("app", "tests.conftest"):
    print(importlib.util.find_spec(name).origin)
"""


@pytest.mark.integration
def test_the_compatibility_test_passes_in_a_fresh_clone(tmp_path: Path) -> None:
    """A clone of the committed HEAD (uncommitted changes are not in it), alone in its
    folder, runs the compatibility test green, installing its npm packages itself. This
    interpreter's packages are reused (a new venv would take minutes); the clone's own
    ``app`` and ``tests`` are imported, not this checkout's."""
    clone = tmp_path / "alone" / "backstage-auth-backend"
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(clone)], check=True)
    _git("checkout", "--quiet", "--detach", _git("rev-parse", "HEAD"), cwd=clone)
    assert list(clone.parent.iterdir()) == [clone]
    assert not (clone / "tests/compat/peer_idp/node_modules").exists()

    env = {k: v for k, v in os.environ.items() if k != "COMPAT_TRANSCRIPTS"}
    env["PYTHONPATH"] = str(clone)
    imported = subprocess.run(
        [sys.executable, "-c", _PRINT_ORIGINS],
        cwd=clone,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert all(Path(path).is_relative_to(clone) for path in imported), imported

    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        + ["tests/compat/test_backstage_peer.py"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    summary = run.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in [\d.]+s", summary), summary
    assert (clone / "tests/compat/peer_idp/node_modules/oauth2-mock-server").is_dir()
