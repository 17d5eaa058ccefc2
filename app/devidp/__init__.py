"""An embedded OpenID provider for development: ``/dev-idp`` on this server.

Enabled by ``auth.devIdentityProvider.enabled: true``, and only in development mode on a
loopback address (else the start is refused). See ``settings`` (what runs), ``server``
(the Flask app over Authlib's authorization server), ``grants`` and ``models`` (Authlib's
grants and models), ``store`` (memory), ``mount`` (in this process, through a2wsgi).

Flask and a2wsgi are imported only when the provider is mounted (``mount``, ``server``
load on first use), so a server without it does not load them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from app.devidp.settings import (
    DEMO_USERS,
    MOUNT_PATH,
    DevIdpSettings,
    DevUser,
    dev_idp_settings,
    is_loopback_host,
)

if TYPE_CHECKING:
    from connexion import AsyncApp

    from app.config.settings import Settings
    from app.devidp.mount import mount_dev_idp
    from app.devidp.server import DevIdentityProvider

_LAZY = {
    "mount_dev_idp": "app.devidp.mount",
    "DevIdentityProvider": "app.devidp.server",
}


def mount_configured_dev_idp(
    app: AsyncApp, settings: Settings, *, development: bool
) -> DevIdentityProvider | None:
    """Mount it when ``auth.devIdentityProvider.enabled`` is set; None otherwise.

    Raises:
        ConfigError: enabled outside development mode, or not on loopback.
    """
    dev_settings = dev_idp_settings(settings, development=development)
    if dev_settings is None:
        return None
    # Here, not at the top: it loads Authlib's Flask authorization server.
    from app.devidp.mount import mount_dev_idp

    return mount_dev_idp(app, settings=dev_settings)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "DEMO_USERS",
    "MOUNT_PATH",
    "DevIdentityProvider",
    "DevIdpSettings",
    "DevUser",
    "dev_idp_settings",
    "is_loopback_host",
    "mount_configured_dev_idp",
    "mount_dev_idp",
]
