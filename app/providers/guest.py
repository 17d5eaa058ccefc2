"""``guest``: signs everyone in as one configured user (development only).

Proxy-style: configured at ``auth.providers.guest`` with no environment level; only
``/refresh`` works. Outside development it refuses unless
``dangerouslyAllowOutsideDevelopment`` is set, because it authenticates nobody.
(``plugins/auth-backend-module-guest-provider``)
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field

from app.config.validation import Lenient, validate_model
from app.core.errors import NotAllowedError
from app.identity.resolvers import AuthResolverContext, SignInResolver
from app.identity.types import BackstageIdentity, ProfileInfo, SignInInfo
from app.providers.base import ProxyRequest, ProxyResult
from app.providers.registry_types import ProviderDeps, ProxyProviderBuild

log = logging.getLogger(__name__)

DEFAULT_USER_ENTITY_REF = "user:development/guest"


class GuestSettings(Lenient):
    userEntityRef: str = DEFAULT_USER_ENTITY_REF
    ownershipEntityRefs: list[str] = Field(default_factory=list)
    dangerouslyAllowOutsideDevelopment: bool = False


class GuestAuthenticator:
    def __init__(self, *, allowed: bool) -> None:
        self._allowed = allowed

    async def authenticate(self, request: ProxyRequest) -> ProxyResult:
        if not self._allowed:
            raise NotAllowedError(
                "The guest provider cannot be used outside of a development environment"
            )
        return ProxyResult(profile=ProfileInfo(), provider_info=None)

    async def aclose(self) -> None:
        return None


def guest_resolver(user_entity_ref: str, ownership: list[str]) -> SignInResolver:
    async def resolve(info: SignInInfo, ctx: AuthResolverContext) -> BackstageIdentity:
        try:
            return await ctx.sign_in_with_catalog_user(entity_ref=user_entity_ref)
        except Exception:  # noqa: BLE001 - Backstage issues the token on any lookup error
            return await ctx.issue_token(sub=user_entity_ref, ent=ownership or [user_entity_ref])

    return resolve


def create(raw: dict[str, Any], path: str, deps: ProviderDeps) -> ProxyProviderBuild:
    settings = validate_model(GuestSettings, raw, path)
    allowed = deps.development or settings.dangerouslyAllowOutsideDevelopment
    if allowed and not deps.development:
        log.warning("guest provider enabled outside development: anyone can sign in")
    return ProxyProviderBuild(
        authenticator=GuestAuthenticator(allowed=allowed),
        sign_in=None,
        default_resolver=guest_resolver(settings.userEntityRef, settings.ownershipEntityRefs),
    )
