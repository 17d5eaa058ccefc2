"""``auth-backend check-config``: what a configuration means for the people who deploy it.

Per provider and environment: the callback URL to register at the identity provider and
the attributes of the cookies the flow sets (from ``OAuthCookieManager``, for the app
origin ``app.baseUrl``). Then warnings for risky settings. Validation itself is
``create_app``'s (the CLI runs it first): this module only reads a valid configuration.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from app.config.settings import Settings
from app.core.clock import SystemClock
from app.core.durations import parse_duration_seconds
from app.devidp.settings import DevIdpSettings, is_loopback_host
from app.oauth.cookies import (
    DEFAULT_SESSION_MAX_AGE_SECONDS,
    NONCE_MAX_AGE_SECONDS,
    CookieAttributes,
    OAuthCookieManager,
)
from app.oauth.origins import Origin, parse_origin
from app.providers.registry_types import ProviderDefinition
from app.server.outbound_hosts import outbound_lines
from app.server.proxy_env import ProxyRules
from app.server.trust import trust_from_environ


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def render(self) -> str:
        out = list(self.lines)
        if self.warnings:
            out.append("")
            out.append(f"warnings ({len(self.warnings)}):")
            out += [f"  - {w}" for w in self.warnings]
        return "\n".join(out)


def _cookie(attrs: CookieAttributes, max_age: int) -> str:
    return (
        f"Path={attrs.path}; SameSite={attrs.same_site}; "
        f"Secure={'yes' if attrs.secure else 'no'}; HttpOnly; Max-Age={max_age}"
    )


def _is_local(url: str) -> bool:
    return is_loopback_host(urlsplit(url).hostname or "")


def _plain_http(report: Report, key: str, url: str) -> None:
    if urlsplit(url).scheme == "http" and not _is_local(url):
        report.warnings.append(
            f"{key}: {url} is plain http on a host that is not local: tokens and the "
            "cookies cross the network unencrypted; "
            "use https"
        )


def check(
    settings: Settings,
    *,
    development: bool,
    providers: Mapping[str, ProviderDefinition],
    dev_idp: DevIdpSettings | None = None,
    proxies: ProxyRules | None = None,
) -> Report:
    report = Report()
    app_origin = parse_origin(settings.app_base_url)
    assert app_origin is not None  # validated by read_settings
    mode = "development" if development else "production"
    report.lines += [
        f"configuration OK (checked for {mode})",
        f"app origin: {app_origin}",
        f"token issuer: {settings.auth_base_url}",
        f"frontend environment (auth.environment): {settings.auth_environment}",
    ]
    _plain_http(report, "app.baseUrl", settings.app_base_url)
    _plain_http(report, "backend.baseUrl", settings.backend_base_url)
    if settings.session_secret is None:
        report.warnings.append(
            "auth.session.secret is not set: development generates one in the data directory; "
            "a production start refuses OAuth providers without it"
        )
    for provider_id, config in settings.providers.items():
        definition = providers.get(provider_id)
        if definition is None:
            report.warnings.append(
                f"auth.providers.{provider_id}: not implemented by this server; not mounted"
            )
            continue
        report.lines.append("")
        if definition.kind == "proxy":
            _proxy(report, provider_id, config)
        else:
            _oauth(report, provider_id, definition, config, settings, app_origin=app_origin)
    report.lines += outbound_lines(
        settings.raw,
        proxies or ProxyRules.from_environ(os.environ),
        trust_from_environ(os.environ).description,
    )
    if dev_idp is not None:
        report.lines += [
            "",
            f"development identity provider: enabled at {dev_idp.issuer} "
            f"(discovery {dev_idp.discovery_url})",
            "  clients: " + (", ".join(c.client_id for c in dev_idp.clients) or "none"),
            "  users: " + ", ".join(u.username for u in dev_idp.users),
        ]
    return report


def _proxy(report: Report, provider_id: str, config: Mapping[str, Any]) -> None:
    report.lines += [
        f"provider {provider_id} (proxy): no callback URL, no cookies",
        f"  sign-in: GET /api/auth/{provider_id}/refresh",
    ]
    if provider_id == "guest" and config.get("dangerouslyAllowOutsideDevelopment") is True:
        user = config.get("userEntityRef", "user:development/guest")
        report.warnings.append(
            f"auth.providers.guest.dangerouslyAllowOutsideDevelopment: anyone who reaches "
            f"this server signs in as {user}, in production too"
        )


def _oauth(
    report: Report,
    provider_id: str,
    definition: ProviderDefinition,
    config: Mapping[str, Any],
    settings: Settings,
    *,
    app_origin: Origin,
) -> None:
    report.lines.append(f"provider {provider_id} (OAuth)")
    for env_name, env in config.items():
        if not isinstance(env, Mapping):
            continue
        key = f"auth.providers.{provider_id}.{env_name}"
        callback = str(
            env.get("callbackUrl") or f"{settings.auth_base_url}/{provider_id}/handler/frame"
        )
        duration = env.get("sessionDuration")
        session_seconds = int(parse_duration_seconds(duration)) if duration is not None else None
        cookies = OAuthCookieManager(
            provider_id=provider_id,
            callback_url=callback,
            default_app_origin=app_origin,
            session_max_age_seconds=session_seconds,
            clock=SystemClock(),
        )
        nonce = cookies.attributes(path=f"{cookies.base_path}/handler", app_origin=None)
        refresh = cookies.attributes(path=cookies.base_path, app_origin=None)
        active = " (the frontend's)" if env_name == settings.auth_environment else ""
        refresh_age = session_seconds or DEFAULT_SESSION_MAX_AGE_SECONDS
        report.lines += [
            f"  environment {env_name}{active}",
            f"    callback URL to register: {callback}",
            f"    cookie {cookies.nonce_name}: {_cookie(nonce, NONCE_MAX_AGE_SECONDS)}",
            f"    cookie {cookies.refresh_token_name}: {_cookie(refresh, refresh_age)}",
        ]
        if definition.describe_sign_out is not None:
            report.lines.append(f"    sign-out: {definition.describe_sign_out(env)}")
        _plain_http(report, f"{key}.callbackUrl", callback)
        if refresh.same_site == "None":
            report.warnings.append(
                f"{key}: cookies are SameSite=None (the app's host {app_origin.host} differs "
                f"from the callback's {urlsplit(callback).hostname}): they ride on cross-site "
                "requests, and browsers that block third-party cookies drop them; serve the "
                "app and the backend from one host if you can"
            )
