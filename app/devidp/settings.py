"""``auth.devIdentityProvider``: whether the embedded development identity provider runs,
and with which clients and users.

Ours (not Backstage's). It runs only in development mode and only when the server listens
on loopback and this server's external URL (``backend.baseUrl``, or ``discovery.endpoints``
for ``auth``) names a loopback host: it signs in anyone, without a password. Its clients
are the provider environments whose ``metadataUrl`` is its discovery document (or whose
``authorizationUrl`` is under its issuer): their ``clientId``, ``clientSecret`` and
callback URL register themselves, so the config says each once.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from app.config.settings import Settings
from app.config.validation import ConfigError, Lenient, validate_model
from app.core.errors import AUTH_MOUNT

CONFIG_PATH = "auth.devIdentityProvider"
# Where the identity provider is mounted on this server.
MOUNT_PATH = "/dev-idp"
DISCOVERY_PATH = "/.well-known/openid-configuration"

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


@dataclass(frozen=True)
class DevUser:
    username: str
    name: str

    @property
    def email(self) -> str:
        return f"{self.username}@example.com"


DEMO_USERS: tuple[DevUser, ...] = (
    DevUser("alice", "Alice Adams"),
    DevUser("bob", "Bob Baker"),
    DevUser("carol", "Carol Chen"),
)


@dataclass(frozen=True)
class DevClientConfig:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    # How the client authenticates at the token endpoint.
    token_endpoint_auth_method: str = "client_secret_basic"


@dataclass(frozen=True)
class DevIdpSettings:
    issuer: str
    clients: tuple[DevClientConfig, ...]
    users: tuple[DevUser, ...] = DEMO_USERS

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}{DISCOVERY_PATH}"


def username_from(text: str) -> str | None:
    """A typed name as a user name: lower case, spaces to dots, other characters dropped
    (the email's local part becomes a Backstage entity name)."""
    # "Élodie" -> "elodie": accents off, then only what entity names allow.
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"\s+", ".", ascii_text.strip().lower())
    slug = re.sub(r"[^a-z0-9._-]", "", slug).strip("._-")[:63]
    return slug if _USERNAME.match(slug) else None


class _UserConfig(Lenient):
    username: str
    name: str | None = None

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not _USERNAME.match(value):
            raise ValueError("must be lower-case letters, digits, '.', '_' or '-'")
        return value


class _DevIdpConfig(Lenient):
    enabled: bool = False
    users: list[_UserConfig] = Field(default_factory=list)


def is_loopback_host(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost (a host name that resolves elsewhere does not count)."""
    host = host.strip().strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _clients(
    providers: Mapping[str, Any], issuer: str, auth_base: str
) -> tuple[DevClientConfig, ...]:
    found: dict[str, DevClientConfig] = {}
    for provider_id, environments in providers.items():
        if not isinstance(environments, Mapping):
            continue
        for env_name, env in environments.items():
            if not isinstance(env, Mapping):
                continue
            metadata_url = str(env.get("metadataUrl") or "").rstrip("/")
            authorization_url = str(env.get("authorizationUrl") or "")
            if metadata_url != f"{issuer}{DISCOVERY_PATH}" and not authorization_url.startswith(
                f"{issuer}/"
            ):
                continue
            client_id, secret = env.get("clientId"), env.get("clientSecret")
            if not isinstance(client_id, str) or not isinstance(secret, str):
                continue  # the provider's own validation names the missing key
            callback = str(env.get("callbackUrl") or f"{auth_base}/{provider_id}/handler/frame")
            method = str(env.get("tokenEndpointAuthMethod") or "client_secret_basic")
            known = found.get(client_id)
            if known is not None and known.client_secret != secret:
                raise ConfigError(
                    f"auth.providers.{provider_id}.{env_name}.clientSecret: client "
                    f"'{client_id}' of the development identity provider has two secrets"
                )
            uris = (known.redirect_uris if known else ()) + (callback,)
            found[client_id] = DevClientConfig(
                client_id, secret, tuple(dict.fromkeys(uris)), method
            )
    return tuple(found.values())


def server_root(auth_base_url: str) -> str:
    """Where this server's root is reached: the auth plugin's external URL (Backstage's
    discovery) without its ``/api/auth`` mount, or that URL's origin when a gateway maps
    another path to it. Under a shared ``app-config.yaml``, ``backend.baseUrl`` is the main
    Backstage backend, not this server."""
    if auth_base_url.endswith(AUTH_MOUNT):
        return auth_base_url.removesuffix(AUTH_MOUNT)
    parts = urlsplit(auth_base_url)
    return f"{parts.scheme}://{parts.netloc}"


def dev_idp_settings(settings: Settings, *, development: bool) -> DevIdpSettings | None:
    """The development identity provider's settings; None when it is not enabled.

    ``settings.listen_host`` must be the host the server really listens on (the CLI folds
    ``--host`` into it).

    Raises:
        ConfigError: enabled outside development, or on a host other than loopback.
    """
    auth = settings.raw.get("auth")
    raw = auth.get("devIdentityProvider") if isinstance(auth, Mapping) else None
    config = validate_model(_DevIdpConfig, raw, CONFIG_PATH)
    if not config.enabled:
        return None
    if not development:
        raise ConfigError(
            f"{CONFIG_PATH}.enabled: refusing to start the development identity provider "
            "outside development mode (it signs anyone in without a password); start with "
            "--development (or NODE_ENV=development), or remove it from the configuration"
        )
    listen_host = settings.listen_host or "0.0.0.0"
    if not is_loopback_host(listen_host):
        raise ConfigError(
            f"{CONFIG_PATH}.enabled: refusing to start the development identity provider "
            f"while the server listens on '{listen_host}'; it runs only on loopback "
            "(--host 127.0.0.1, ::1 or localhost)"
        )
    auth_base = settings.auth_base_url
    if not is_loopback_host(urlsplit(auth_base).hostname or ""):
        raise ConfigError(
            f"{CONFIG_PATH}.enabled: refusing to start the development identity provider: "
            f"this server's external URL '{auth_base}' (backend.baseUrl, or "
            "discovery.endpoints for auth) is not a loopback address "
            "(use http://localhost:<port>)"
        )
    issuer = f"{server_root(auth_base)}{MOUNT_PATH}"
    users = tuple(DevUser(u.username, u.name or u.username) for u in config.users)
    return DevIdpSettings(
        issuer=issuer,
        clients=_clients(settings.providers, issuer, auth_base),
        users=users or DEMO_USERS,
    )
