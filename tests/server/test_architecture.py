"""docs/architecture.md names every module and package of app/, so that a newcomer finds
where a change belongs; a module added without a line there fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "architecture.md").read_text()
# The "Every module" listing: names as words, so "oauth.py" is not found inside "oauth2.py".
LISTED = set(re.findall(r"[\w.-]+", DOC.split("## Every module", 1)[1]))


def _modules() -> list[Path]:
    app = ROOT / "app"
    return sorted(
        p.relative_to(app)
        for p in app.rglob("*.py")
        if p.name != "__init__.py" and "migrations" not in p.parts
    )


def test_every_module_is_listed() -> None:
    missing = [str(p) for p in _modules() if p.name not in LISTED]
    assert missing == []


def test_every_package_is_listed() -> None:
    packages = sorted(
        p.parent.relative_to(ROOT / "app")
        for p in (ROOT / "app").rglob("__init__.py")
        if "migrations" not in p.parts and p.parent != ROOT / "app"
    )
    missing = [str(p) for p in packages if f"{p.name}/" not in DOC]
    assert missing == []


def test_the_layers_drawn_are_the_layers_enforced() -> None:
    contract = (ROOT / ".importlinter").read_text()
    layers = contract.split("layers =", 1)[1].split("\n\n", 1)[0].split("#", 1)[0]
    enforced = set(re.findall(r"\b(\w+)\b", layers))
    drawn = set(re.findall(r"│ (\w+)/", DOC))
    assert enforced == drawn
