"""Backstage's ``app-config.yaml``: loading, merging and substitution.

Files are read in order and deep-merged (objects merge, everything else is replaced by
the later file), then ``APP_CONFIG_<path>`` environment variables override single keys,
as Backstage's config loader does. In strings, ``${VAR}`` is replaced by the environment
variable (a value whose variable is unset is dropped, as in Backstage) and ``$${`` escapes;
``{$env: VAR}`` and ``{$file: path}`` objects are supported too. Keys of other Backstage
plugins are ignored. Every error names the key path.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from app.config.validation import ConfigError


class _EnvTemplate(string.Template):
    # Only ${VAR} is a reference (Backstage); "$$" before "{" escapes. A bare "$x" in a
    # secret stays as it is.
    pattern = r"""
    \$(?:
      (?P<escaped>\$(?=\{)) |
      \{(?P<braced>[_a-zA-Z][_a-zA-Z0-9]*)\} |
      (?P<named>(?!)) |
      (?P<invalid>(?!))
    )
    """  # type: ignore[assignment]


class _Unset:
    pass


_UNSET = _Unset()


def _substitute(
    value: Any, env: Mapping[str, str], base_dir: Path, path: str, unset: dict[str, str]
) -> Any:
    if isinstance(value, str):
        try:
            return _EnvTemplate(value).substitute(env)
        except KeyError as exc:
            unset[path] = str(exc.args[0])
            return _UNSET
    if isinstance(value, dict):
        if set(value) == {"$env"}:
            name = str(value["$env"])
            if name not in env:
                unset[path] = name
            return env.get(name, _UNSET)
        if set(value) == {"$file"}:
            file = base_dir / str(value["$file"])
            try:
                return file.read_text()
            except OSError as exc:
                raise ConfigError(f"{path}: cannot read $file {file}: {exc.strerror}") from exc
        out = {}
        for key, item in value.items():
            sub = _substitute(item, env, base_dir, f"{path}.{key}" if path else str(key), unset)
            if sub is not _UNSET:
                out[str(key)] = sub
        return out
    if isinstance(value, list):
        items = [_substitute(v, env, base_dir, f"{path}[{i}]", unset) for i, v in enumerate(value)]
        return [v for v in items if v is not _UNSET]
    return value


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_overrides(env: Mapping[str, str]) -> dict[str, Any]:
    """``APP_CONFIG_backend_baseUrl=...``; values are JSON when they parse as JSON."""
    out: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith("APP_CONFIG_"):
            continue
        keys = name[len("APP_CONFIG_") :].split("_")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        node = out
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    return out


def explain_unset(message: str, unset: Mapping[str, str]) -> str:
    """``message`` (a ConfigError's) with the variables behind the keys it names that were
    dropped because they are not set: "clientSecret: Field required" alone hides that
    ``${GITHUB_CLIENT_SECRET}`` was the cause."""
    notes = [
        f"{path} was dropped: its environment variable {name} is not set"
        for path, name in unset.items()
        # The key itself, or a sibling's error (a dropped `clientID` leaves `clientId`
        # missing): the parent's path is named.
        if re.search(rf"(^|; ){re.escape(path.rpartition('.')[0] or path)}(\.|:)", message)
    ]
    return "; ".join([message, *notes])


def load_config(
    paths: Sequence[Path], env: Mapping[str, str], unset: dict[str, str] | None = None
) -> dict[str, Any]:
    """Read, merge and substitute config files; ``unset`` collects the key paths whose
    value was dropped, with the variable that was not set.

    Raises:
        ConfigError: unreadable or invalid YAML, unreadable ``$file``.
    """
    merged: dict[str, Any] = {}
    for path in paths:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
        if not isinstance(doc, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        merged = deep_merge(
            merged, _substitute(doc, env, path.parent, "", unset if unset is not None else {})
        )
    return deep_merge(merged, _env_overrides(env))
