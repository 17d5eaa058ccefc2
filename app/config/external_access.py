"""``backend.auth.externalAccess``: the service callers Backstage's backend accepts.

``static`` (a token and its subject), ``legacy`` (an HS256 key shared with the caller) and
``jwks`` (JWTs signed by keys published at a URL, checked for issuer, audience and
algorithm), each with optional ``accessRestrictions``. Errors carry the start-up messages
of the external token handlers of ``@backstage/backend-defaults``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.config.validation import ConfigError, optional_mapping

MIN_STATIC_TOKEN_LENGTH = 8
_NON_SPACE = re.compile(r"^\S+$")
_RESTRICTION_KEYS = ("plugin", "permission", "permissionAttribute")


@dataclass(frozen=True)
class JwksOptions:
    """A ``jwks`` entry: unset lists accept any value (Backstage passes ``undefined`` to
    ``jwtVerify``)."""

    url: str
    algorithms: tuple[str, ...] | None = None
    issuers: tuple[str, ...] | None = None
    audiences: tuple[str, ...] | None = None
    subject_prefix: str | None = None


@dataclass(frozen=True)
class ExternalAccess:
    """One entry. ``subject`` is the caller's for ``static`` and ``legacy`` (a ``jwks``
    caller's comes from its token); ``restricted_to`` the plugin ids of
    ``accessRestrictions`` (None: unrestricted)."""

    type: str
    subject: str = ""
    token: str | None = None
    key: bytes | None = None
    jwks: JwksOptions | None = None
    restricted_to: tuple[str, ...] | None = None


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{path}: must be a string")
    return value


def _strings(config: Mapping[str, Any], key: str, path: str) -> tuple[str, ...] | None:
    """``readStringOrStringArrayFromConfig``: a string or a list of them, each split on
    spaces and commas, deduplicated; None when absent or empty."""
    if key not in config:
        return None
    raw = config[key]
    items = raw if isinstance(raw, list) else [raw]
    if not all(isinstance(item, str) for item in items):
        raise ConfigError(f"{path}.{key}: must be a string or a list of strings")
    values = dict.fromkeys(v for item in items for v in re.split(r"[ ,]", item) if v)
    return tuple(values) or None


def _restrictions(entry: Mapping[str, Any], path: str) -> tuple[str, ...] | None:
    raw = entry.get("accessRestrictions")
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise ConfigError(f"{path}.accessRestrictions: must be a list")
    plugins: list[str] = []
    for i, item in enumerate(raw):
        restriction = optional_mapping(item, f"{path}.accessRestrictions[{i}]")
        for key in restriction:
            if key not in _RESTRICTION_KEYS:
                valid = ", ".join(f"'{k}'" for k in _RESTRICTION_KEYS)
                raise ConfigError(
                    f"Invalid key '{key}' in 'accessRestrictions' config, expected one of {valid}"
                )
        plugin = _string(restriction.get("plugin"), f"{path}.accessRestrictions[{i}].plugin")
        if plugin in plugins:
            raise ConfigError(
                f"Attempted to declare 'accessRestrictions' twice for plugin '{plugin}', "
                "which is not permitted"
            )
        plugins.append(plugin)
    return tuple(plugins) or None


def _jwks(options: Mapping[str, Any], path: str) -> JwksOptions:
    url = _string(options.get("url"), f"{path}.options.url")
    if not _NON_SPACE.match(url):
        raise ConfigError(f"{path}: Illegal JWKS URL, must be a set of non-space characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigError(f"{path}: Invalid URL '{url}'") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{path}: Invalid URL '{url}', the keys are fetched over http(s)")
    prefix = options.get("subjectPrefix")
    if prefix is not None:
        prefix = _string(prefix, f"{path}.options.subjectPrefix")
    return JwksOptions(
        url=url,
        algorithms=_strings(options, "algorithm", f"{path}.options"),
        issuers=_strings(options, "issuer", f"{path}.options"),
        audiences=_strings(options, "audience", f"{path}.options"),
        subject_prefix=prefix or None,
    )


def _entry(item: Any, path: str) -> ExternalAccess:
    entry = optional_mapping(item, path)
    kind = entry.get("type")
    options = optional_mapping(entry.get("options"), f"{path}.options")
    restricted_to = _restrictions(entry, path)
    if kind == "static":
        token = _string(options.get("token"), f"{path}.options.token")
        subject = _string(options.get("subject"), f"{path}.options.subject")
        if not _NON_SPACE.match(token):
            raise ConfigError(f"{path}: Illegal token, must be a set of non-space characters")
        if len(token) < MIN_STATIC_TOKEN_LENGTH:
            raise ConfigError(
                f"{path}: Illegal token, must be at least {MIN_STATIC_TOKEN_LENGTH} "
                "characters length"
            )
        if not _NON_SPACE.match(subject):
            raise ConfigError(f"{path}: Illegal subject, must be a set of non-space characters")
        return ExternalAccess("static", subject, token=token, restricted_to=restricted_to)
    if kind == "legacy":
        secret = _string(options.get("secret"), f"{path}.options.secret")
        subject = _string(options.get("subject"), f"{path}.options.subject")
        try:
            key = base64.b64decode(secret, validate=False) if _NON_SPACE.match(secret) else b""
        except (binascii.Error, ValueError):
            key = b""
        if not key:
            raise ConfigError(f"{path}: Illegal secret, must be a valid base64 string")
        if not _NON_SPACE.match(subject):
            raise ConfigError(f"{path}: Illegal subject, must be a set of non-space characters")
        return ExternalAccess("legacy", subject, key=key, restricted_to=restricted_to)
    if kind == "jwks":
        return ExternalAccess("jwks", jwks=_jwks(options, path), restricted_to=restricted_to)
    raise ConfigError(f"{path}.type: unknown external access type '{kind}'")


def read_external_access(backend: Any) -> tuple[ExternalAccess, ...]:
    auth = optional_mapping(optional_mapping(backend, "backend").get("auth"), "backend.auth")
    entries = auth.get("externalAccess")
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise ConfigError("backend.auth.externalAccess: must be a list")
    return tuple(
        _entry(item, f"backend.auth.externalAccess[{i}]") for i, item in enumerate(entries)
    )
