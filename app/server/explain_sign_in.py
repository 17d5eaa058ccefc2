"""``auth-backend explain-sign-in``: why a profile signs in as someone, or not at all.

Runs the configured sign-in resolvers of one provider (environment) for a profile given as
JSON, against the configured catalog, and issues nothing: each step (resolver, lookup,
found, why it stopped) and the identity it would issue are printed. The profile is what the
identity provider reports (claims or user info): ``email``, ``email_verified``,
``name``/``displayName``, ``picture`` and any other member the provider's own resolvers read
from the sign-in facts (``claims``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2

from app.config.settings import Settings
from app.config.validation import ConfigError
from app.core.clock import SystemClock
from app.core.errors import BackstageError
from app.identity.catalog_config import aclose_catalog, catalog_from_config
from app.identity.resolvers import SignInResolver
from app.identity.sign_in_trace import Step, TracingContext
from app.identity.types import BackstageIdentity, ProfileInfo, SignInInfo
from app.providers.registry_types import ProviderDefinition, ProviderDeps, ProxyProviderDefinition
from app.server.runtimes import configured_sign_in as configured_resolver


@dataclass
class Explanation:
    provider: str
    environment: str | None
    profile: ProfileInfo
    steps: list[Step] = field(default_factory=list)
    identity: BackstageIdentity | None = None
    failure: str | None = None

    def render(self) -> str:
        where = f"environment {self.environment}" if self.environment else "proxy provider"
        lines = [
            f"provider {self.provider} ({where})",
            f"profile: {json.dumps(self.profile.to_json())}",
        ]
        number = 0
        for step in self.steps:
            kind = step["step"]
            if kind == "profile":
                lines.append(f"  {step['note']}")
            elif kind == "resolver":
                number += 1
                lines.append(f"{number}. resolver {step['resolver']}")
            elif kind == "lookup":
                query = ", ".join(f"{k}={v}" for k, v in step["query"].items())
                lines.append(f"   lookup {query}: {step.get('found', '?')}")
            elif kind == "stopped":
                lines.append(f"   stopped: {step['why']} ({step['message']})")
            else:
                lines.append(
                    f"   {kind}: {step['userEntityRef']} "
                    f"(ownership: {', '.join(step['ownershipEntityRefs'])})"
                )
        if self.identity is not None:
            lines.append(f"result: signs in as {self.identity.user_entity_ref}")
        else:
            lines.append(f"result: sign-in fails: {self.failure}")
        return "\n".join(lines)


def profile_from_json(provider_id: str, data: Mapping[str, Any]) -> tuple[ProfileInfo, str | None]:
    """The profile the provider would hand its resolvers, and why an email was dropped."""
    email = data.get("email") if isinstance(data.get("email"), str) else None
    note = None
    verified = data.get("email_verified")
    # oidc takes the email only when verified; the others drop it when marked unverified.
    if email and (verified is False or (provider_id == "oidc" and verified is not True)):
        note = f"email {email} dropped: email_verified is {json.dumps(verified)}"
        email = None
    name = data.get("displayName", data.get("name"))
    picture = data.get("picture")
    return (
        ProfileInfo(
            email=email,
            display_name=name if isinstance(name, str) else None,
            picture=picture if isinstance(picture, str) else None,
        ),
        note,
    )


def _resolver(
    settings: Settings,
    provider_id: str,
    env: str | None,
    definition: ProviderDefinition,
    deps: ProviderDeps,
) -> tuple[SignInResolver | None, str | None]:
    config = settings.providers[provider_id]
    path = f"auth.providers.{provider_id}"
    if isinstance(definition, ProxyProviderDefinition):
        build = definition.factory(dict(config), path, deps)
        configured = configured_resolver(
            definition, build.sign_in.resolvers if build.sign_in else None, f"{path}.signIn"
        )
        return build.default_resolver or configured, None
    env = env or settings.auth_environment
    env_config = config.get(env)
    if not isinstance(env_config, dict):
        raise ConfigError(f"{path}.{env}: no such environment (have: {', '.join(config)})")
    oauth = definition.factory(env_config, f"{path}.{env}", deps)
    sign_in = oauth.settings.signIn
    resolvers = sign_in.resolvers if sign_in else None
    return configured_resolver(
        definition, resolvers, f"{path}.{env}.signIn.resolvers"
    ) or oauth.default_resolver, env


async def explain(
    settings: Settings,
    *,
    provider_id: str,
    env: str | None,
    profile: Mapping[str, Any],
    providers: Mapping[str, ProviderDefinition],
    config_dir: Path,
    transport: httpx2.AsyncBaseTransport,
) -> Explanation:
    definition = providers.get(provider_id)
    if definition is None or provider_id not in settings.providers:
        raise ConfigError(f"auth.providers.{provider_id}: not configured or not implemented")
    clock = SystemClock()
    deps = ProviderDeps(clock=clock, development=True, transport=transport)
    resolver, env = _resolver(settings, provider_id, env, definition, deps)
    info, note = profile_from_json(provider_id, profile)
    result = Explanation(provider_id, env, info)
    if note is not None:
        result.steps.append({"step": "profile", "note": note})
    if resolver is None:
        result.failure = "no sign-in resolver is configured for it"
        return result
    catalog = catalog_from_config(
        settings.raw, config_dir=config_dir, clock=clock, transport=transport
    )
    context = TracingContext.dry_run(catalog, email_unverified=note is not None)
    try:
        result.identity = await resolver(
            SignInInfo(provider_id, info, {"claims": dict(profile)}), context
        )
    except BackstageError as exc:
        result.failure = f"{exc.name}: {exc.message}"
    finally:
        await aclose_catalog(catalog)
    result.steps += context.steps
    return result
