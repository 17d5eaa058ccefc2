"""The documents stand on their own: no path outside the repository (a clone has nothing
beside it), numbered lists that count 1, 2, 3 within each section, and one version
everywhere (the package, every spec document, the CHANGELOG's latest entry)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
OUTSIDE = re.compile(r"\.\./shared|/work/|/home/")


def test_no_document_points_outside_the_repository() -> None:
    found = [
        f"{doc.relative_to(ROOT)}:{number}: {line.strip()}"
        for doc in DOCUMENTS
        for number, line in enumerate(doc.read_text().splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert found == []


def test_numbered_lists_count_from_one_within_each_section() -> None:
    problems = []
    for doc in DOCUMENTS:
        expected = 1
        in_code = False
        for number, line in enumerate(doc.read_text().splitlines(), 1):
            if line.startswith("```"):
                in_code = not in_code
            if in_code:
                continue
            if line.startswith("#"):
                expected = 1
                continue
            item = re.match(r"^(\d+)\. ", line)
            if item:
                if int(item.group(1)) != expected:
                    problems.append(f"{doc.relative_to(ROOT)}:{number}: {line[:60]}")
                expected = int(item.group(1)) + 1
            elif line and not line.startswith(" ") and not line.startswith("|"):
                # A paragraph at the left margin ends the list.
                expected = 1
    assert problems == []


def test_one_version_everywhere() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert version == "0.2.0"
    for spec in sorted((ROOT / "spec").glob("*.yaml")):
        assert yaml.safe_load(spec.read_text())["info"]["version"] == version, spec.name
    latest = re.search(r"^## \[?(\d+\.\d+\.\d+)", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert latest is not None and latest.group(1) == version
