"""The OpenAPI documents in spec/, rendered and parsed as connexion would, only faster.

connexion 3.3 (``Specification._load_spec_from_file``) reads a spec file, renders it with
``jinja2.Template(text).render(**arguments)`` and parses the result with the pure-Python
``yaml.safe_load``: ~45 ms for ``openapi.yaml``, which is mounted once per provider.
``load_spec`` does the same with the template compiled once per file and libyaml's
``CSafeLoader`` (same constructor, so the same Python objects; ~5 ms), and ``add_api``
takes the resulting dict.

One difference remains: connexion resolves a file's relative ``$ref`` against the file's
folder, a dict's against nothing. Our documents only use local references
(``#/components/...``), and ``load_spec`` refuses any other, so that one never resolves
against the working directory by accident.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import yaml

# libyaml's loader when PyYAML was built with it (the wheels are); the same SafeConstructor.
_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)


class SpecError(ValueError):
    """A spec document that is not a mapping, or that refers outside itself."""


@functools.cache
def _template(path: Path) -> jinja2.Template:
    """The file's Jinja template, compiled once per process (as connexion decodes it)."""
    contents = path.read_bytes()
    try:
        text = contents.decode()
    except UnicodeDecodeError:
        text = contents.decode("utf-8", "replace")
    template: jinja2.Template = jinja2.Template(text)
    return template


def render_spec(path: Path, arguments: Mapping[str, Any] | None = None) -> str:
    """The document's text after Jinja, exactly what connexion would parse."""
    return _template(path).render(**(arguments or {}))


def load_spec(path: Path, arguments: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The parsed document, a fresh dict on every call (connexion changes what it gets).

    Raises:
        SpecError: the document is not a mapping or has a non-local ``$ref``.
    """
    spec = yaml.load(render_spec(path, arguments), Loader=_LOADER)
    if not isinstance(spec, dict):
        raise SpecError(f"{path}: not an OpenAPI document (a mapping)")
    _check_local_refs(spec, path)
    return spec


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
