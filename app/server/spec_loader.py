"""The OpenAPI documents in spec/, parsed as connexion would, only faster.

connexion 3.3 (``Specification._load_spec_from_file``) reads a spec file, passes it
through Jinja and parses the result with the pure-Python ``yaml.safe_load``: ~45 ms for
``openapi.yaml``, which is mounted once per provider. Our documents are plain OpenAPI (no
template: what differs between providers is applied in app.server.spec_documents), so
each file is parsed once per process here, with libyaml's ``CSafeLoader`` (same
constructor, so the same Python objects), and every caller gets a copy (~0.4 ms);
``add_api`` takes the resulting dict.

One difference remains: connexion resolves a file's relative ``$ref`` against the file's
folder, a dict's against nothing. Our documents only use local references
(``#/components/...``), and the loader refuses any other, so that one never resolves
against the working directory by accident.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

# libyaml's loader when PyYAML was built with it (the wheels are); the same SafeConstructor.
_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)


class SpecError(ValueError):
    """A spec document that is not a mapping, or that refers outside itself."""


@functools.cache
def _parsed(path: Path) -> dict[str, Any]:
    with path.open("rb") as file:
        spec = yaml.load(file, Loader=_LOADER)
    if not isinstance(spec, dict):
        raise SpecError(f"{path}: not an OpenAPI document (a mapping)")
    _check_local_refs(spec, path)
    return spec


def spec_template(path: Path) -> Mapping[str, Any]:
    """The parsed document, shared by every caller in the process: never change it."""
    return _parsed(path)


def load_spec(path: Path) -> dict[str, Any]:
    """The parsed document, a fresh copy on every call (connexion changes what it gets).

    Raises:
        SpecError: the document is not a mapping or has a non-local ``$ref``.
    """
    copied: dict[str, Any] = copy_document(_parsed(path))
    return copied


def copy_document(node: Any) -> Any:
    """A copy of a parsed document that shares no dict or list with it (a third of
    ``copy.deepcopy``'s time: no memo, only what YAML and JSON produce)."""
    if isinstance(node, dict):
        return {key: copy_document(value) for key, value in node.items()}
    if isinstance(node, list):
        return [copy_document(item) for item in node]
    return node


def _check_local_refs(node: object, path: Path) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            raise SpecError(f"{path}: $ref {ref!r} is not local (only '#/...' is supported)")
        for value in node.values():
            _check_local_refs(value, path)
    elif isinstance(node, list):
        for item in node:
            _check_local_refs(item, path)
