"""The catalog sign-in looks users up in, from app-config.

Backstage's own keys, read as Backstage reads them:

* ``catalog.locations[]``: ``{type, target, rules?}``; ``type: file`` locations are read
  (a relative ``target`` is relative to the directory of the config file, where Backstage
  uses the backend's working directory), other types are ignored with a log line;
  ``rules: [{allow: [User, Group]}]`` applies to that location only.
* ``catalog.rules[]``: ``{allow: [<kind> | {kind, spec.type}], locations?: [{type, exact |
  pattern}]}``. Backstage's default, ``allow: [Component, API, Location]``, applies when
  rules are configured anywhere but ``catalog.rules`` is absent. With no rules at all,
  every User and Group is accepted (a config written for this server alone needs none).

This server's own keys, under ``auth.catalog``:

* ``fileRefreshInterval``: duration, how often file locations are checked for changes
  (on a lookup); default 5 seconds.
* ``remote``: ``{baseUrl, token, cacheTtl?, timeout?}``, a running Backstage catalog
  instead of files, with a static token: the explicit override of rule 2 below, for a
  catalog that discovery does not reach or that does not trust our plugin keys. On the
  Backstage side the token is a ``backend.auth.externalAccess`` entry of ``type: static``
  (``options: {token, subject}``, optionally ``accessRestrictions: [{plugin: catalog}]``).
  ``baseUrl`` is the Backstage backend's base URL (``/api/catalog`` is appended);
  ``cacheTtl`` (default 10 seconds, 0 disables) and ``timeout`` (default 10 seconds) are
  durations. When ``remote`` is set, ``catalog.locations`` is ignored.

Which catalog, in order (one rule; ``describe_catalog`` says which applied and why):

1. ``auth.catalog.remote``: the explicit override above.
2. ``discovery.endpoints`` names the ``auth`` plugin: this server runs as the auth plugin
   split out of a Backstage backend, so the config is that backend's shared
   ``app-config.yaml``. The catalog is the real one, at discovery's internal URL of
   ``catalog``, called with our plugin tokens (``aud: catalog``) exactly as Backstage's
   auth backend calls it; ``catalog.locations`` there belongs to the catalog plugin and
   is never read.
3. Otherwise (the zero-config demo, a config written for this server alone): the
   ``type: file`` locations of ``catalog.locations``.

One piece (over 300 lines): the one rule that picks the catalog (remote override,
discovery, files) and each catalog's config reading, which the rule must see together.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2

from app.config.discovery import OWN_PLUGIN_ID, Discovery
from app.config.validation import ConfigError
from app.core.clock import Clock
from app.core.durations import parse_duration_seconds
from app.core.timeouts import OUTBOUND_TIMEOUT_SECONDS
from app.identity.catalog import Catalog, InMemoryCatalog
from app.identity.catalog_rules import (
    DEFAULT_RULES,
    CatalogRule,
    CatalogRules,
    KindMatcher,
    LocationMatcher,
)
from app.identity.file_catalog import DEFAULT_REFRESH_INTERVAL_SECONDS, FileCatalog
from app.identity.plugin_tokens import PluginTokenIssuer
from app.identity.remote_catalog import DEFAULT_CACHE_TTL_SECONDS, RemoteCatalog

log = logging.getLogger(__name__)

_AUTH_CATALOG_KEYS = ("fileRefreshInterval", "remote")
_REMOTE_KEYS = ("baseUrl", "token", "cacheTtl", "timeout")
_GLOB_CHARS = ("*", "?", "[")


def describe_catalog(raw_config: Mapping[str, Any], discovery: Discovery) -> str:
    """Which catalog the rule above picks, and where it was found (for check-config)."""
    auth = _mapping(raw_config.get("auth"), "auth")
    remote = _mapping(auth.get("catalog"), "auth.catalog").get("remote")
    if isinstance(remote, Mapping):
        return f"remote at {remote.get('baseUrl')}/api/catalog (auth.catalog.remote, static token)"
    if discovery.configured(OWN_PLUGIN_ID):
        return (
            f"the Backstage catalog at {discovery.internal('catalog')} (discovery: "
            "discovery.endpoints names auth; our plugin tokens; catalog.locations not read)"
        )
    locations = _mapping(raw_config.get("catalog"), "catalog").get("locations")
    if locations:
        return "file locations (catalog.locations, type: file)"
    return "none (sign-in resolvers find no users)"


def catalog_from_config(
    raw_config: Mapping[str, Any],
    *,
    config_dir: Path,
    clock: Clock,
    transport: httpx2.AsyncBaseTransport | None = None,
    discovery: Discovery | None = None,
    plugin_tokens: PluginTokenIssuer | None = None,
) -> Catalog:
    """A ``RemoteCatalog``, a ``FileCatalog`` or an empty ``InMemoryCatalog``.

    Raises:
        ConfigError: naming the key path of an invalid value.
    """
    auth = _mapping(raw_config.get("auth"), "auth")
    options = _mapping(auth.get("catalog"), "auth.catalog")
    _known_keys(options, _AUTH_CATALOG_KEYS, "auth.catalog")
    catalog = _mapping(raw_config.get("catalog"), "catalog")
    if options.get("remote") is not None:
        if catalog.get("locations"):
            log.info("auth.catalog.remote is configured; catalog.locations is not read")
        return _remote(_mapping(options["remote"], "auth.catalog.remote"), clock, transport)
    if discovery is not None and plugin_tokens is not None and discovery.configured(OWN_PLUGIN_ID):
        url = discovery.internal("catalog")
        log.info("catalog: the Backstage catalog at %s, found through discovery", url)

        async def token() -> str:
            return await plugin_tokens.issue("catalog")

        return RemoteCatalog(
            url,
            token,
            clock=clock,
            transport=transport,
            plugin_base_url=url,
        )
    base = Path(os.path.abspath(config_dir))
    targets, rules = _file_locations(catalog, base)
    if not targets:
        log.info("no catalog configured: sign-in resolvers will find no users")
        return InMemoryCatalog([])
    interval = _duration(
        options, "fileRefreshInterval", "auth.catalog", DEFAULT_REFRESH_INTERVAL_SECONDS
    )
    return FileCatalog(targets, clock=clock, rules=rules, refresh_interval_seconds=interval)


async def aclose_catalog(catalog: Catalog) -> None:
    """Release what a catalog holds (the remote catalog's HTTP connections)."""
    if isinstance(catalog, RemoteCatalog | FileCatalog):
        await catalog.aclose()


# -- remote ----------------------------------------------------------------------------


def _remote(
    remote: Mapping[str, Any], clock: Clock, transport: httpx2.AsyncBaseTransport | None
) -> RemoteCatalog:
    path = "auth.catalog.remote"
    _known_keys(remote, _REMOTE_KEYS, path)
    base_url = remote.get("baseUrl")
    if not isinstance(base_url, str):
        raise ConfigError(f"{path}.baseUrl: required, the Backstage backend's base URL")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ConfigError(f"{path}.baseUrl: '{base_url}' is not an absolute http(s) URL")
    token = remote.get("token")
    if not isinstance(token, str) or not token.strip():
        raise ConfigError(
            f"{path}.token: required, a static token the catalog accepts "
            "(backend.auth.externalAccess on the Backstage side)"
        )
    return RemoteCatalog(
        base_url,
        token.strip(),
        clock=clock,
        transport=transport,
        cache_ttl_seconds=_duration(remote, "cacheTtl", path, DEFAULT_CACHE_TTL_SECONDS),
        timeout_seconds=_duration(
            remote, "timeout", path, OUTBOUND_TIMEOUT_SECONDS, allow_zero=False
        ),
    )


# -- files -----------------------------------------------------------------------------


def missing_catalog_files(raw_config: Mapping[str, Any], *, config_dir: Path) -> list[str]:
    """The ``catalog.locations`` files (no globs) that do not exist: sign-in resolvers
    would find none of their users. Empty when ``auth.catalog.remote`` is used."""
    auth = _mapping(raw_config.get("auth"), "auth")
    if _mapping(auth.get("catalog"), "auth.catalog").get("remote") is not None:
        return []
    catalog = _mapping(raw_config.get("catalog"), "catalog")
    targets, _ = _file_locations(catalog, Path(os.path.abspath(config_dir)))
    return [t for t in targets if not any(c in t for c in _GLOB_CHARS) and not os.path.exists(t)]


def _file_locations(
    catalog: Mapping[str, Any], base: Path
) -> tuple[list[str], CatalogRules | None]:
    locations = _list(catalog.get("locations"), "catalog.locations")
    targets: list[str] = []
    location_rules: list[CatalogRule] = []
    any_rules = "rules" in catalog and catalog["rules"] is not None
    for index, raw in enumerate(locations):
        path = f"catalog.locations[{index}]"
        location = _mapping(raw, path)
        location_type = _string(location.get("type"), f"{path}.type")
        target = _string(location.get("target"), f"{path}.target")
        rules = _list(location.get("rules"), f"{path}.rules")
        any_rules = any_rules or location.get("rules") is not None
        if location_type != "file":
            log.info(
                "%s: locations of type '%s' are not read by this server; ignored",
                path,
                location_type,
            )
            continue
        target = _resolve(target, base)
        targets.append(target)
        matcher = _file_matcher(target)
        for rule_index, rule in enumerate(rules):
            rule_path = f"{path}.rules[{rule_index}]"
            allow = _list(_mapping(rule, rule_path).get("allow"), f"{rule_path}.allow")
            kinds = tuple(
                KindMatcher(_string(kind, f"{rule_path}.allow[{i}]"))
                for i, kind in enumerate(allow)
            )
            location_rules.append(CatalogRule(allow=kinds, locations=(matcher,)))
    if not any_rules:
        if targets:
            log.info("catalog rules are not configured: every User and Group in the files is read")
        return targets, None
    global_rules = (
        _global_rules(catalog["rules"], base)
        if catalog.get("rules") is not None
        else list(DEFAULT_RULES)
    )
    return targets, CatalogRules([*global_rules, *location_rules])


def _global_rules(value: Any, base: Path) -> list[CatalogRule]:
    out = []
    for index, raw in enumerate(_list(value, "catalog.rules")):
        path = f"catalog.rules[{index}]"
        rule = _mapping(raw, path)
        allow = [
            _kind_matcher(kind, f"{path}.allow[{i}]")
            for i, kind in enumerate(_list(rule.get("allow"), f"{path}.allow"))
        ]
        locations = None
        if rule.get("locations") is not None:
            locations = tuple(
                _location_matcher(loc, f"{path}.locations[{i}]", base)
                for i, loc in enumerate(_list(rule["locations"], f"{path}.locations"))
            )
        out.append(CatalogRule(allow=tuple(allow), locations=locations))
    return out


def _kind_matcher(value: Any, path: str) -> KindMatcher:
    if isinstance(value, str) and value:
        return KindMatcher(value)
    matcher = _mapping(value, path)
    spec_type = matcher.get("spec.type")
    if spec_type is not None and not isinstance(spec_type, str):
        raise ConfigError(f"{path}.spec.type: must be a string")
    return KindMatcher(_string(matcher.get("kind"), f"{path}.kind"), spec_type)


def _location_matcher(value: Any, path: str, base: Path) -> LocationMatcher:
    matcher = _mapping(value, path)
    location_type = _string(matcher.get("type"), f"{path}.type")
    exact, pattern = matcher.get("exact"), matcher.get("pattern")
    if exact is not None and pattern is not None:
        raise ConfigError(f"{path}: a catalog rule location cannot have both exact and pattern")
    if exact is not None:
        exact = _string(exact, f"{path}.exact")
        exact = _resolve(exact, base) if location_type == "file" else exact
    if pattern is not None:
        pattern = _string(pattern, f"{path}.pattern")
        pattern = _resolve(pattern, base) if location_type == "file" else pattern
    return LocationMatcher(type=location_type, exact=exact, pattern=pattern)


def _file_matcher(target: str) -> LocationMatcher:
    if any(c in target for c in _GLOB_CHARS):
        return LocationMatcher(type="file", pattern=target)
    return LocationMatcher(type="file", exact=target)


def _resolve(target: str, base: Path) -> str:
    return os.path.normpath(os.path.join(base, target))


# -- value helpers ---------------------------------------------------------------------


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: must be an object")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{path}: must be a list")
    return value


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}: must be a non-empty string")
    return value


def _known_keys(value: Mapping[str, Any], known: tuple[str, ...], path: str) -> None:
    for key in value:
        if key not in known:
            raise ConfigError(f"{path}.{key}: unknown key (known: {', '.join(known)})")


def _duration(
    options: Mapping[str, Any], key: str, path: str, default: float, *, allow_zero: bool = True
) -> float:
    value = options.get(key)
    if value is None:
        return default
    try:
        seconds = parse_duration_seconds(value)
    except ValueError as exc:
        raise ConfigError(f"{path}.{key}: {exc}") from None
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ConfigError(f"{path}.{key}: must be {'zero or ' if allow_zero else ''}positive")
    return seconds
