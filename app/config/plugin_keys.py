"""``backend.auth.pluginKeyStore``: where the keys that sign our plugin tokens live, as
Backstage's ``createPluginKeySource`` reads it. Absent or ``type: database``: generated
keys whose public halves go to the ``backstage_backend_public_keys__keys`` table;
``type: static``: ``static.keys[]`` of ``{publicKeyFile, privateKeyFile?, keyId,
algorithm?}`` (the first key signs and must have its private half)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.config.validation import ConfigError

CONFIG_PATH = "backend.auth.pluginKeyStore"


@dataclass(frozen=True)
class PluginKeyStoreSettings:
    type: str = "database"
    static_keys: tuple[Mapping[str, Any], ...] = ()


def read_plugin_key_store(raw: Mapping[str, Any]) -> PluginKeyStoreSettings:
    """Raises ConfigError with Backstage's start-up messages."""
    backend = raw.get("backend")
    auth = backend.get("auth") if isinstance(backend, Mapping) else None
    section = auth.get("pluginKeyStore") if isinstance(auth, Mapping) else None
    if section is None:
        return PluginKeyStoreSettings()
    if not isinstance(section, Mapping):
        raise ConfigError(f"{CONFIG_PATH}: must be a mapping")
    kind = section.get("type", "database")
    if kind == "database":
        return PluginKeyStoreSettings()
    if kind != "static":
        raise ConfigError(
            f"Unsupported config value {CONFIG_PATH}.type '{kind}'; "
            "expected one of 'database', 'static'"
        )
    static = section.get("static")
    keys = static.get("keys") if isinstance(static, Mapping) else None
    if not isinstance(keys, list) or not keys:
        raise ConfigError(
            "At least one key pair must be provided in static.keys, when the static key "
            "store type is used"
        )
    for i, key in enumerate(keys):
        if not isinstance(key, Mapping):
            raise ConfigError(f"{CONFIG_PATH}.static.keys[{i}]: must be a mapping")
    if not keys[0].get("privateKeyFile"):
        raise ConfigError(
            "Private key for signing must be provided in the first key pair in static.keys, "
            "when the static key store type is used"
        )
    return PluginKeyStoreSettings(type="static", static_keys=tuple(keys))
