"""``check-config``'s section on the authorization server (``auth.staticClients``,
``auth.experimentalRefreshToken``): the clients, their redirect URIs, whether refresh
tokens are on, and warnings for clients that leak codes or have guessable secrets."""

from __future__ import annotations

from typing import Protocol
from urllib.parse import urlsplit

from app.authz.clients import LOOPBACK_HOSTS
from app.config.authorization import RefreshTokenSettings, StaticClient
from app.config.settings import Settings
from app.oauth.origins import parse_origin

# A client secret is a password the client presents: shorter than 32 characters (about
# 190 bits of random base64) it is likely chosen by a person, not generated.
MIN_SECRET_LENGTH = 32
_DAY = 86400
_YEAR = 31_557_600  # 365.25 days, as Backstage's durations count a year


class _Report(Protocol):
    lines: list[str]
    warnings: list[str]


def _duration(seconds: int) -> str:
    for unit, name in ((_YEAR, "year"), (_DAY, "day")):
        if seconds % unit == 0:
            count = seconds // unit
            return f"{count} {name}{'' if count == 1 else 's'}"
    return f"{seconds} s"


def _refresh_line(refresh: RefreshTokenSettings, *, keyed: bool) -> str:
    if not refresh.enabled:
        return "  refresh tokens: disabled (auth.experimentalRefreshToken.enabled: false)"
    hashes = "HMAC-SHA256 keyed from auth.session.secret" if keyed else "SHA-256, unkeyed"
    catalog = ", no catalog check" if refresh.disable_catalog_presence_check else ""
    return (
        f"  refresh tokens: enabled (lifetime {_duration(refresh.token_lifetime_seconds)}, "
        f"rotation up to {_duration(refresh.max_rotation_lifetime_seconds)}, "
        f"{refresh.max_tokens_per_user} per user{catalog}; stored as {hashes})"
    )


def _client(report: _Report, index: int, client: StaticClient) -> None:
    key = f"auth.staticClients[{index}] ({client.client_id})"
    kind = "confidential (client secret)" if client.client_secret else "public (PKCE only)"
    report.lines.append(f"  client {client.client_id} ({client.client_name}): {kind}")
    for uri in client.redirect_uris:
        split = urlsplit(uri)
        host = (split.hostname or "").lower()
        loopback = split.scheme.lower() == "http" and host in LOOPBACK_HOSTS
        report.lines.append(f"    redirect URI: {uri}{' (loopback: any port)' if loopback else ''}")
        if split.scheme.lower() == "http" and not loopback:
            report.warnings.append(
                f"{key}: redirect URI {uri} is plain http on a host that is not loopback: "
                "authorization codes cross the network unencrypted; use https"
            )
    secret = client.client_secret
    if secret and len(secret) < MIN_SECRET_LENGTH:
        report.warnings.append(
            f"{key}: the client secret has {len(secret)} characters: use a random one of at "
            f"least {MIN_SECRET_LENGTH}"
        )


def check_authorization(report: _Report, settings: Settings) -> None:
    config = settings.authorization
    report.warnings.extend(config.warnings)
    if not config.enabled:
        return
    app = parse_origin(settings.app_base_url)
    own = app is not None and app == parse_origin(settings.backend_base_url)
    consent = "this server's demo page" if own else "the Backstage app's page"
    report.lines += [
        "",
        f"authorization server (CLI and MCP clients): {settings.auth_base_url}/v1",
        f"  consent page: {settings.app_base_url.rstrip('/')}/oauth2/authorize/<id> ({consent})",
        _refresh_line(config.refresh_tokens, keyed=settings.session_secret is not None),
    ]
    for index, client in enumerate(config.static_clients):
        _client(report, index, client)
