"""Validation helpers for config subtrees; they import nothing from ``app`` so that every
layer (providers, identity, db) can use them without pulling in the server."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from app.config.suggest import missing_block_keys, misspelled_keys

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """Raised when the configuration cannot be used; the message names the key path."""


log = logging.getLogger("app.config")


def format_validation_error(
    exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None
) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        full = ".".join(p for p in (prefix, loc) if p)
        msg = err["msg"].removeprefix("Value error, ")
        required = missing_block_keys(model, err["loc"]) if model is not None else []
        if err["type"] == "missing" and required:
            # "app: Field required" says less than the key to write.
            lines += [f"{full}.{key}: Field required" for key in required]
            continue
        lines.append(f"{full or '(top level)'}: {msg}")
    return "; ".join(dict.fromkeys(lines))


def validate_model(model: type[M], data: Any, path: str) -> M:
    """Validate one config subtree.

    Raises:
        ConfigError: naming each failing key path.
    """
    # A misspelled key is otherwise silently ignored (every model is lenient).
    hints = misspelled_keys(model, data, path)
    try:
        validated = model.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise ConfigError("; ".join([format_validation_error(exc, path, model), *hints])) from exc
    for hint in hints:
        log.warning("%s", hint)
    return validated


class Lenient(BaseModel):
    """Keys of other Backstage plugins (and ones we do not read) are ignored, as Backstage's
    config readers do; a validated config is never changed afterwards."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


def string_list(value: Any) -> list[str]:
    """Backstage accepts a string, a comma-separated string or a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ValueError("must be a string or a list of strings")


def optional_mapping(value: Any, path: str) -> Mapping[str, Any]:
    """A config subtree that may be absent (an empty mapping then).

    Raises:
        ConfigError: ``value`` is present and not a mapping.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: must be a mapping")
    return value
