"""Scope strings: Backstage splits on whitespace, ``|`` and ``,`` and joins with a space."""

from __future__ import annotations

import re
from collections.abc import Iterable

_SPLIT = re.compile(r"[\s|,]+")


def split_scope(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [s for s in _SPLIT.split(value) if s]
    out: list[str] = []
    for item in value:
        out.extend(split_scope(item))
    return out


def merge_scopes(*groups: Iterable[str]) -> list[str]:
    """Order-preserving union."""
    seen: dict[str, None] = {}
    for group in groups:
        for scope in group:
            seen.setdefault(scope, None)
    return list(seen)


def join_scope(scopes: Iterable[str]) -> str:
    return " ".join(scopes)
