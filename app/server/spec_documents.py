"""Each provider's own document, made from ``spec/openapi.yaml`` as committed.

The file is a plain OpenAPI document: the API of an OAuth-style provider, mounted at
``/api/auth/{provider}``. What differs between providers is applied here to a copy of the
parsed document (parsed once per process: see app.server.spec_loader), before ``add_api``:

* ``{provider}`` in any string (the server URL, cookie names, texts) becomes the id;
* for proxy-style providers, every object that carries ``x-proxy`` is adjusted: ``omit``
  leaves it out (and a component left out takes its references with it), a mapping is laid
  over it (a ``null`` value removes that key); paths and components that only served what
  was left out go too. OAuth providers' documents just lose the marker;
* the provider's pass-through ``/start`` query parameters (auth0's) are appended.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

PLACEHOLDER: Final = "{provider}"
MARKER: Final = "x-proxy"
OMIT: Final = "omit"


def provider_document(
    template: Mapping[str, Any],
    provider_id: str,
    *,
    kind: str,
    start_params: Iterable[str] = (),
) -> dict[str, Any]:
    """A new document for one provider; ``template`` is left as it is."""
    proxy = kind == "proxy"
    omitted = _omitted_components(template) if proxy else frozenset()
    document = _adjust(template, provider_id, proxy=proxy, omitted=omitted)
    assert isinstance(document, dict)
    # A path whose every operation was left out is left out.
    document["paths"] = {path: item for path, item in document["paths"].items() if item}
    if proxy:
        _drop_unused_components(document)
    # Only the one server, with the id in it: connexion mounts the document there.
    document["servers"] = [{"url": _substitute(template["servers"][0]["url"], provider_id)}]
    start = document["paths"].get("/start", {}).get("get")
    if start is not None and not proxy:
        start.setdefault("parameters", []).extend(
            {
                "name": name,
                "in": "query",
                "description": f"Passed through to the `{provider_id}` authorization request.",
                "schema": {"type": "string"},
            }
            for name in start_params
        )
    return document


def _omitted_components(template: Mapping[str, Any]) -> frozenset[str]:
    """The references (``#/components/<section>/<name>``) to components marked ``omit``."""
    return frozenset(
        f"#/components/{section}/{name}"
        for section, items in template.get("components", {}).items()
        for name, item in items.items()
        if isinstance(item, dict) and item.get(MARKER) == OMIT
    )


_DROP = object()


def _adjust(node: Any, provider_id: str, *, proxy: bool, omitted: frozenset[str]) -> Any:
    """A copy of ``node`` for the provider (copies share nothing: connexion changes what it
    is given). ``_DROP`` for a node that a proxy provider's document leaves out."""
    if isinstance(node, dict):
        marker = node.get(MARKER)
        if proxy and (marker == OMIT or node.get("$ref") in omitted):
            return _DROP
        overlay = marker if proxy and isinstance(marker, dict) else {}
        out: dict[str, Any] = {}
        for key, value in {**node, **overlay}.items():
            if key == MARKER or (value is None and key in overlay):
                continue
            adjusted = _adjust(value, provider_id, proxy=proxy, omitted=omitted)
            if adjusted is not _DROP:
                out[key] = adjusted
        return out
    if isinstance(node, list):
        items = (_adjust(item, provider_id, proxy=proxy, omitted=omitted) for item in node)
        return [item for item in items if item is not _DROP]
    if isinstance(node, str):
        return _substitute(node, provider_id)
    return node


def _substitute(text: str, provider_id: str) -> str:
    return text.replace(PLACEHOLDER, provider_id) if PLACEHOLDER in text else text


def _drop_unused_components(document: dict[str, Any]) -> None:
    """Leaves out the components that only the operations left out referred to."""
    components: dict[str, dict[str, Any]] = document.get("components", {})
    used: set[str] = set()
    pending = _refs(document["paths"])
    while pending:
        ref = pending.pop()
        if ref not in used:
            used.add(ref)
            _, _, section, name = ref.split("/", 3)
            pending |= _refs(components[section][name])
    for section, items in components.items():
        for name in [n for n in items if f"#/components/{section}/{n}" not in used]:
            del items[name]


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        own = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return own.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node))
    return set()
