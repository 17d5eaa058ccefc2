""" "Did you mean ...?" for configuration keys and provider ids that are close to known
ones. Backstage's config holds keys of every plugin, so an unknown key is only reported
when it is nearly a key this server reads (a typo), never merely for being unknown."""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Mapping
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel

# Close enough to be a typo of the key (clientID/clientId, sesion/session), far enough
# that another plugin's key (backend.cache, backend.csp) is left alone.
_CUTOFF = 0.8


def closest(word: str, known: Iterable[str]) -> str | None:
    """The known word ``word`` most likely misspells, if any."""
    candidates = sorted(set(known))
    for candidate in candidates:
        if candidate.lower() == word.lower():
            return candidate
    found = difflib.get_close_matches(word, candidates, n=1, cutoff=_CUTOFF)
    return found[0] if found else None


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The models a field's value can be (``X | None``, unions, ``list`` left out)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _models(arg)]
    return []


def _known_keys(model: type[BaseModel]) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        keys[name] = info.annotation
        if info.alias:
            keys[info.alias] = info.annotation
    # Keys of this subtree that other modules read from the raw config.
    for name in getattr(model, "read_elsewhere", ()):
        keys.setdefault(name, None)
    return keys


def misspelled_keys(model: type[BaseModel], data: Any, path: str) -> list[str]:
    """``<path>.<key>: unknown key; did you mean <known>?`` for each key under ``data``
    (recursively, through nested models) that is close to a key ``model`` reads. Keys at
    the top level of the whole config (``path`` empty) are other plugins' and are not
    reported, only looked into."""
    if not isinstance(data, Mapping):
        return []
    known = _known_keys(model)
    hints: list[str] = []
    for key, value in data.items():
        key = str(key)
        full = f"{path}.{key}" if path else key
        if key in known:
            for nested in _models(known[key])[:1]:
                hints += misspelled_keys(nested, value, full)
            continue
        if not path:
            continue
        guess = closest(key, known)
        if guess is not None:
            hints.append(f"{full}: unknown key; did you mean {guess}?")
    return hints


def missing_block_keys(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """For a required field that is a model (``app``), its own required keys
    (``baseUrl``), so the error can name ``app.baseUrl``."""
    current: Any = model
    for part in loc:
        models = _models(current)
        if not models or not isinstance(part, str):
            return []
        field = models[0].model_fields.get(part)
        if field is None:
            return []
        current = field.annotation
    nested = _models(current)
    if not nested:
        return []
    return [name for name, info in nested[0].model_fields.items() if info.is_required()]
