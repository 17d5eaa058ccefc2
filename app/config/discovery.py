"""Where each Backstage plugin is, as Backstage's ``HostDiscovery`` resolves it.

* ``backend.baseUrl`` gives the external fallback ``<baseUrl>/api/<pluginId>``;
  ``backend.listen`` (``http`` unless ``backend.https`` is set) the internal fallback
  ``http://<listen host>:<port>/api/<pluginId>``.
* ``discovery.endpoints``: ``[{target, plugins}]`` where ``target`` is a URL pattern for
  both, or ``{internal?, external?}``; ``{{pluginId}}`` (spaces allowed inside the braces)
  is replaced by the URL-encoded plugin id. ``"*"`` in ``plugins`` matches every plugin;
  a later entry for the same plugin wins. SRV targets (``+srv+``) are refused: this
  server does not resolve DNS SRV records.

Our own external base URL is ``external("auth")``: the ``iss`` of our tokens, the base
of callback URLs and of every link we publish. Other plugins (the catalog, callers of
ours) are reached at ``internal(pluginId)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from app.config.validation import ConfigError

_PLUGIN_ID = re.compile(r"\{\{\s*pluginId\s*\}\}")
OWN_PLUGIN_ID = "auth"


def _pattern(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}: must be a URL pattern string")
    if "+srv+" in value:
        raise ConfigError(f"{path}: SRV resolver URLs are not supported by this server")
    parts = urlsplit(_PLUGIN_ID.sub("x", value))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{path}: '{value}' is not an absolute http(s) URL pattern")
    return value


def _resolve(pattern: str, plugin_id: str) -> str:
    # A function replacement: a plugin id holding a backslash must not be read as a group.
    encoded = quote(plugin_id, safe="!'()*-._~")
    return _PLUGIN_ID.sub(lambda _: encoded, pattern)


@dataclass(frozen=True)
class Discovery:
    """Internal and external base URLs of plugins (``HostDiscovery``'s rules)."""

    internal_fallback: str
    external_fallback: str
    internal_targets: Mapping[str, str] = field(default_factory=dict)
    external_targets: Mapping[str, str] = field(default_factory=dict)

    def internal(self, plugin_id: str) -> str:
        """Where this server calls ``plugin_id`` (Backstage's ``getBaseUrl``)."""
        pattern = self.internal_targets.get(plugin_id) or self.internal_targets.get("*")
        return _resolve(pattern or self.internal_fallback, plugin_id)

    def external(self, plugin_id: str) -> str:
        """Where browsers and other parties reach ``plugin_id`` (``getExternalBaseUrl``)."""
        pattern = self.external_targets.get(plugin_id) or self.external_targets.get("*")
        return _resolve(pattern or self.external_fallback, plugin_id)

    def configured(self, plugin_id: str) -> bool:
        """Whether ``discovery.endpoints`` names ``plugin_id`` (not the ``*`` wildcard)."""
        return plugin_id in self.internal_targets or plugin_id in self.external_targets


def _internal_fallback(backend: Mapping[str, Any], host: str, port: int) -> str:
    protocol = "https" if backend.get("https") else "http"
    if host in ("::", ""):
        host = "localhost"
    elif host == "0.0.0.0":
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{protocol}://{host}:{port}/api/{{{{pluginId}}}}"


def read_discovery(
    raw: Mapping[str, Any], *, backend_base_url: str, listen_host: str, listen_port: int
) -> Discovery:
    """``discovery.endpoints`` over the fallbacks from ``backend``.

    Raises:
        ConfigError: naming the failing key path.
    """
    backend = raw.get("backend")
    backend = backend if isinstance(backend, Mapping) else {}
    section = raw.get("discovery")
    if section is not None and not isinstance(section, Mapping):
        raise ConfigError("discovery: must be a mapping")
    endpoints = (section or {}).get("endpoints") or []
    if not isinstance(endpoints, list):
        raise ConfigError("discovery.endpoints: must be a list")
    internal: dict[str, str] = {}
    external: dict[str, str] = {}
    for index, entry in enumerate(endpoints):
        path = f"discovery.endpoints[{index}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{path}: must be a mapping {{target, plugins}}")
        plugins = entry.get("plugins")
        if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
            raise ConfigError(f"{path}.plugins: must be a list of plugin ids")
        target = entry.get("target")
        inner: str | None
        outer: str | None
        if isinstance(target, str):
            inner = outer = _pattern(target, f"{path}.target")
        elif isinstance(target, Mapping):
            inner = target.get("internal")
            outer = target.get("external")
            inner = None if inner is None else _pattern(inner, f"{path}.target.internal")
            outer = None if outer is None else _pattern(outer, f"{path}.target.external")
        else:
            raise ConfigError(f"{path}.target: must be a URL pattern or {{internal, external}}")
        for plugin in plugins:
            if inner is not None:
                internal[plugin] = inner
            if outer is not None:
                external[plugin] = outer
    return Discovery(
        internal_fallback=_internal_fallback(backend, listen_host, listen_port),
        external_fallback=f"{backend_base_url.rstrip('/')}/api/{{{{pluginId}}}}",
        internal_targets=internal,
        external_targets=external,
    )
