"""One OpenAPI document for API clients, combined from the documents a server mounts.

Each mounted document keeps its own URL and Swagger UI; this one (served at
``/api/auth/openapi.json``) describes all of them at once, for client generators and
API browsers. Its paths are the mounted ones (base path + path), each operation is
tagged with its document's name and its operationId prefixed with it, so that they stay
unique. Components that are the same in every document that has them (the providers'
error responses) are kept once; one that differs between documents (a provider's cookie
parameters) is kept once per document as ``<document>_<name>``, with the references to it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


@dataclass(frozen=True)
class MountedDocument:
    name: str  # a plain identifier: it names the tag and prefixes operationIds
    base_path: str  # where the document is mounted ("" for the root)
    document: Mapping[str, Any]


class CombineError(ValueError):
    """Two mounted documents claim the same path."""


def combined_document(
    mounted: Iterable[MountedDocument], *, title: str, description: str
) -> dict[str, Any]:
    """A new document; the mounted ones are left as they are."""
    mounted = list(mounted)
    versions = sorted({str(m.document["info"]["version"]) for m in mounted})
    contested = _contested(mounted)
    components: dict[str, dict[str, Any]] = {}
    paths: dict[str, Any] = {}
    tags: list[dict[str, str]] = []
    for item in mounted:
        renames = _renames(item, contested)
        for section, items in item.document.get("components", {}).items():
            for name, value in items.items():
                ref = renames.get(_ref(section, name), _ref(section, name))
                components.setdefault(section, {})[ref.rsplit("/", 1)[1]] = _rewrite(value, renames)
        tags.append({"name": item.name, "description": str(item.document["info"]["title"])})
        for path, path_item in item.document["paths"].items():
            full = item.base_path.rstrip("/") + path
            if full in paths:
                raise CombineError(f"{full} is in two documents (the second is {item.name})")
            combined = _rewrite(path_item, renames)
            for method, operation in combined.items():
                if method in _METHODS:
                    operation["operationId"] = f"{item.name}_{operation['operationId']}"
                    operation["tags"] = [item.name]
            paths[full] = combined
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "description": description, "version": ", ".join(versions)},
        "tags": tags,
        "paths": paths,
        "components": components,
    }


def _ref(section: str, name: str) -> str:
    return f"#/components/{section}/{name}"


def _contested(mounted: list[MountedDocument]) -> frozenset[str]:
    """The components (as references) that differ between documents that have them.

    Those are kept once per document, as ``<document>_<name>``; the others once. A
    component that refers to a contested one is contested too (its copies would refer to
    different ones): repeat until no more is.
    """
    contested: frozenset[str] = frozenset()
    while True:
        variants: dict[str, set[str]] = {}
        for item in mounted:
            renames = _renames(item, contested)
            for section, items in item.document.get("components", {}).items():
                for name, value in items.items():
                    canonical = json.dumps(_rewrite(value, renames), sort_keys=True)
                    variants.setdefault(_ref(section, name), set()).add(canonical)
        found = frozenset(ref for ref, values in variants.items() if len(values) > 1)
        if found <= contested:
            return contested
        contested |= found


def _renames(item: MountedDocument, contested: frozenset[str]) -> dict[str, str]:
    """The document's references to its own copies of the contested components."""
    return {
        _ref(section, name): _ref(section, f"{item.name}_{name}")
        for section, items in item.document.get("components", {}).items()
        for name in items
        if _ref(section, name) in contested
    }


def _rewrite(node: Any, renames: Mapping[str, str]) -> Any:
    """A copy of ``node`` with its references renamed."""
    if isinstance(node, dict):
        return {
            key: renames.get(value, value) if key == "$ref" else _rewrite(value, renames)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite(item, renames) for item in node]
    return node
