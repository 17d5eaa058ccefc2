"""``auth-backend check-config``: what a configuration means for the people who deploy it.

Per provider and environment: the callback URL to register at the identity provider and
the attributes of the cookies the flow sets (from ``OAuthCookieManager``, for the app
origin ``app.baseUrl``). Then warnings for risky settings. Validation itself is
``create_app``'s (the CLI runs it first): this module only reads a valid configuration.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.config.session_secret import secret_weakness
from app.config.settings import Settings
from app.config.suggest import closest
from app.core.clock import SystemClock
from app.core.durations import parse_duration_seconds
from app.devidp.settings import DevIdpSettings, is_loopback_host
from app.identity.catalog_config import describe_catalog, missing_catalog_files
from app.oauth.cookies import (
    DEFAULT_SESSION_MAX_AGE_SECONDS,
    NONCE_MAX_AGE_SECONDS,
    CookieAttributes,
    OAuthCookieManager,
)
from app.oauth.origins import Origin, parse_origin
from app.providers.registry_types import ProviderDefinition
from app.server.check_authorization import check_authorization
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


def _weak_secrets(report: Report, settings: Settings) -> None:
    named = [("auth.session.secret", settings.session_secret)] + [
        (f"auth.session.previousSecrets.{i}", s)
        for i, s in enumerate(settings.previous_session_secrets)
    ]
    for key, secret in named:
        weakness = secret_weakness(secret) if secret is not None else None
        if weakness is not None:
            report.warnings.append(
                f"{key}: looks guessable ({weakness}); anyone holding a sealed cookie can "
                "try guesses offline; use a long random value (`openssl rand -base64 32`)"
            )


def _issuer_source(settings: Settings) -> str:
    if settings.plugins.external_targets.get("auth"):
        return "discovery.endpoints, plugin 'auth'"
    if settings.plugins.external_targets.get("*"):
        return "discovery.endpoints, plugin '*'"
    return "backend.baseUrl + /api/auth"


def _legacy_cookies(report: Report, until: float | None) -> None:
    if until is None:
        return
    when = datetime.fromtimestamp(until, UTC).isoformat()
    if until > SystemClock().now():
        report.lines.append(
            f"Backstage refresh cookies: each accepted once until {when} "
            "(auth.session.acceptLegacyRefreshCookiesUntil)"
        )
    else:
        report.warnings.append(
            f"auth.session.acceptLegacyRefreshCookiesUntil: {when} has passed; "
            "Backstage refresh cookies are refused (remove the setting)"
        )


def check(
    settings: Settings,
    *,
    development: bool,
    providers: Mapping[str, ProviderDefinition],
    dev_idp: DevIdpSettings | None = None,
    config_dir: Path = Path("."),
    proxies: ProxyRules | None = None,
) -> Report:
    report = Report()
    app_origin = parse_origin(settings.app_base_url)
    assert app_origin is not None  # validated by read_settings
    # serve starts in production unless told otherwise; check-config's default is
    # development (as `make run`): the first line says which one was checked.
    first = (
        "configuration OK for development (`serve --development`; `serve` without it "
        "starts in production: check that with --production)"
        if development
        else "configuration OK for production (`serve` without --development)"
    )
    report.lines += [
        first,
        f"app origin: {app_origin}",
        f"token issuer: {settings.auth_base_url} ({_issuer_source(settings)})",
        f"frontend environment (auth.environment): {settings.auth_environment}",
        f"catalog: {describe_catalog(settings.raw, settings.plugins)}",
    ]
    demo = development if settings.demo_page is None else settings.demo_page
    metrics = (
        "{}:{}/metrics (backend.metrics)".format(*settings.metrics_listen)
        if settings.metrics_listen is not None
        else "/metrics on the main listener (set backend.metrics to move it)"
    )
    report.lines += [
        f"demo page /: {'on' if demo else 'off'}; Swagger UIs and /docs: "
        f"{'on' if settings.swagger_ui else 'off'}",
        f"metrics: {metrics}",
    ]
    _plain_http(report, "app.baseUrl", settings.app_base_url)
    _plain_http(report, "backend.baseUrl", settings.backend_base_url)
    if settings.plugins.external_targets:
        _plain_http(report, "discovery.endpoints (auth)", settings.auth_base_url)
    if settings.session_secret is None:
        report.warnings.append(
            "auth.session.secret is not set: development generates one in the data directory; "
            "a production start refuses OAuth providers without it"
        )
    for target in missing_catalog_files(settings.raw, config_dir=config_dir):
        report.warnings.append(
            f"catalog.locations: {target} does not exist: sign-in resolvers that look users "
            "up in the catalog find nobody"
        )
    _weak_secrets(report, settings)
    _wide_trust(report, "backend.trustedProxies", settings.trusted_proxies)
    _legacy_cookies(report, settings.legacy_refresh_cookies_until)
    for provider_id, config in settings.providers.items():
        definition = providers.get(provider_id)
        if definition is None:
            guess = closest(provider_id, providers)
            report.warnings.append(
                f"auth.providers.{provider_id}: not implemented by this server; not mounted"
                + (f" (did you mean {guess}?)" if guess else "")
            )
            continue
        report.lines.append("")
        if definition.kind == "proxy":
            _proxy(report, provider_id, config, development=development)
        else:
            _oauth(report, provider_id, definition, config, settings, app_origin=app_origin)
    report.lines += outbound_lines(
        settings.raw,
        proxies or ProxyRules.from_environ(os.environ),
        trust_from_environ(os.environ).description,
        settings.plugins,
    )
    if dev_idp is not None:
        report.lines += [
            "",
            f"development identity provider: enabled at {dev_idp.issuer} "
            f"(discovery {dev_idp.discovery_url})",
            "  clients: " + (", ".join(c.client_id for c in dev_idp.clients) or "none"),
            "  users: " + ", ".join(u.username for u in dev_idp.users),
        ]
    check_authorization(report, settings)
    return report


# A trusted range wider than this is more than the proxies: whoever else is in it
# chooses their own X-Forwarded-For address (and so their rate-limit bucket).
MAX_TRUSTED_ADDRESSES = 16


def _wide_trust(report: Report, key: str, entries: Iterable[Any]) -> None:
    for raw in entries:
        entry = str(raw).strip()
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if network.num_addresses > MAX_TRUSTED_ADDRESSES:
            report.warnings.append(
                f"{key}: {entry} trusts {network.num_addresses} addresses: any client in "
                "it chooses the address it is seen as (rate limits, logs); list the "
                f"proxies only (at most {MAX_TRUSTED_ADDRESSES} addresses a range)"
            )


def _proxy(
    report: Report, provider_id: str, config: Mapping[str, Any], *, development: bool
) -> None:
    report.lines += [
        f"provider {provider_id} (proxy): no callback URL, no cookies",
        f"  sign-in: GET /api/auth/{provider_id}/refresh",
    ]
    if (
        provider_id == "guest"
        and not development
        and config.get("dangerouslyAllowOutsideDevelopment") is not True
    ):
        report.warnings.append(
            "auth.providers.guest: refused in production (every sign-in answers 403); "
            "remove it, or serve with --development"
        )
    trusted = config.get("trustedProxies")
    # A list, or one comma-separated string (``parse_networks``).
    entries = trusted.split(",") if isinstance(trusted, str) else trusted
    if isinstance(entries, list):
        _wide_trust(report, f"auth.providers.{provider_id}.trustedProxies", entries)
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
    environments = [name for name, env in config.items() if isinstance(env, Mapping)]
    if environments and settings.auth_environment not in environments:
        report.warnings.append(
            f"auth.providers.{provider_id}: no configuration for the frontend's environment "
            f"'{settings.auth_environment}' (auth.environment, the `env` the frontend sends), "
            f'only {", ".join(environments)}: its sign-ins answer 404 "No configuration '
            f"available for the '{settings.auth_environment}' environment\"; set "
            f"auth.environment (in the app's config too) or add that environment"
        )
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
