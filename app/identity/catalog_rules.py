"""Which entity kinds a location may contribute (``DefaultCatalogRulesEnforcer``).

Backstage reads ``catalog.rules`` (default: ``allow: [Component, API, Location]``, so no
User or Group) plus ``catalog.locations[].rules``, which apply to that location only. An
entity is allowed when any rule whose location matchers match allows its kind (compared
case-insensitively) and, if the rule names one, its ``spec.type``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class KindMatcher:
    kind: str
    spec_type: str | None = None


@dataclass(frozen=True)
class LocationMatcher:
    type: str
    exact: str | None = None
    pattern: str | None = None  # minimatch-style glob, case-insensitive


@dataclass(frozen=True)
class CatalogRule:
    allow: tuple[KindMatcher, ...]
    locations: tuple[LocationMatcher, ...] | None = None  # None: every location


DEFAULT_RULES = (
    CatalogRule(allow=(KindMatcher("Component"), KindMatcher("API"), KindMatcher("Location"))),
)


@lru_cache(maxsize=256)
def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """``**`` crosses directories, ``*`` and ``?`` do not; dot files match (minimatch)."""
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.IGNORECASE)


class CatalogRules:
    def __init__(self, rules: Sequence[CatalogRule]) -> None:
        self.rules = tuple(rules)

    def is_allowed(
        self, kind: str, spec_type: object, location_type: str, location_target: str
    ) -> bool:
        return any(
            _location_matches(rule.locations, location_type, location_target)
            and _kind_matches(rule.allow, kind, spec_type)
            for rule in self.rules
        )


def _location_matches(
    matchers: tuple[LocationMatcher, ...] | None, location_type: str, target: str
) -> bool:
    if matchers is None:
        return True
    for m in matchers:
        if m.type != location_type:
            continue
        if m.exact is not None and m.exact != target:
            continue
        if m.pattern is not None and not glob_to_regex(m.pattern).match(target):
            continue
        return True
    return False


def _kind_matches(matchers: tuple[KindMatcher, ...], kind: str, spec_type: object) -> bool:
    return any(
        m.kind.lower() == kind.lower() and (m.spec_type is None or m.spec_type == spec_type)
        for m in matchers
    )
