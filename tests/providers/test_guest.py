"""The ``guest`` proxy provider.

Backstage: ``plugins/auth-backend-module-guest-provider/src/module.ts``
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import pytest

from app.config.validation import ConfigError
from app.core.errors import NotAllowedError
from app.identity.catalog import CatalogUser, InMemoryCatalog
from app.identity.keys import MemoryKeyStore
from app.identity.resolvers import AuthResolverContext
from app.identity.tokens import TokenIssuer
from app.identity.types import BackstageIdentity, ProfileInfo, SignInInfo
from app.providers import guest
from app.providers.base import ProxyRequest, ProxyResult
from app.providers.registry import REGISTRY
from app.providers.registry_types import ProviderDeps, ProxyProviderBuild
from tests.fakes.clock import FakeClock

pytestmark = pytest.mark.anyio

PATH = "auth.providers.guest"
REQUEST = ProxyRequest(headers={}, cookies={}, client_host="127.0.0.1")
GUEST_INFO = SignInInfo(provider_id="guest", profile=ProfileInfo())


def _build(raw: dict[str, Any], *, development: bool) -> ProxyProviderBuild:
    return guest.create(raw, PATH, ProviderDeps(clock=FakeClock(), development=development))


def _context(users: Sequence[CatalogUser] = ()) -> AuthResolverContext:
    issuer = TokenIssuer(
        issuer="http://localhost:7007/api/auth", key_store=MemoryKeyStore(), clock=FakeClock()
    )
    return AuthResolverContext(issuer, InMemoryCatalog(users))


def _payload(identity: BackstageIdentity) -> dict[str, Any]:
    part = identity.token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def test_guest_is_a_proxy_provider() -> None:
    assert REGISTRY["guest"].kind == "proxy"
    assert REGISTRY["guest"].factory is guest.create


async def test_development_signs_in_with_an_empty_profile(anyio_backend: str) -> None:
    build = _build({}, development=True)
    result = await build.authenticator.authenticate(REQUEST)

    assert result == ProxyResult(profile=ProfileInfo(), provider_info=None)
    assert result.profile.to_json() == {}
    assert build.sign_in is None


async def test_outside_development_it_is_refused(anyio_backend: str) -> None:
    build = _build({}, development=False)
    with pytest.raises(NotAllowedError) as info:
        await build.authenticator.authenticate(REQUEST)
    assert info.value.status_code == 403
    assert "development" in info.value.message


async def test_outside_development_with_the_dangerous_flag_it_is_allowed(
    anyio_backend: str,
) -> None:
    build = _build({"dangerouslyAllowOutsideDevelopment": True}, development=False)
    result = await build.authenticator.authenticate(REQUEST)
    assert result.profile == ProfileInfo()


async def test_the_flag_set_to_false_is_still_refused(anyio_backend: str) -> None:
    build = _build({"dangerouslyAllowOutsideDevelopment": False}, development=False)
    with pytest.raises(NotAllowedError):
        await build.authenticator.authenticate(REQUEST)


async def test_default_resolver_without_a_catalog_user_issues_the_guest_directly(
    anyio_backend: str,
) -> None:
    resolver = _build({}, development=True).default_resolver
    assert resolver is not None
    identity = await resolver(GUEST_INFO, _context())

    assert identity.user_entity_ref == "user:development/guest"
    assert identity.ownership_entity_refs == ("user:development/guest",)
    assert _payload(identity)["sub"] == "user:development/guest"


async def test_default_resolver_with_configured_refs(anyio_backend: str) -> None:
    raw = {
        "userEntityRef": "user:default/visitor",
        "ownershipEntityRefs": ["user:default/visitor", "group:default/visitors"],
    }
    resolver = _build(raw, development=True).default_resolver
    assert resolver is not None
    identity = await resolver(GUEST_INFO, _context())

    assert identity.user_entity_ref == "user:default/visitor"
    assert identity.ownership_entity_refs == ("user:default/visitor", "group:default/visitors")


async def test_default_resolver_with_a_catalog_user_takes_its_groups(
    anyio_backend: str,
) -> None:
    user = CatalogUser(
        ref="user:development/guest",
        member_of=("group:default/guests", "group:default/readers"),
    )
    resolver = _build({}, development=True).default_resolver
    assert resolver is not None
    identity = await resolver(GUEST_INFO, _context([user]))

    assert identity.user_entity_ref == "user:development/guest"
    assert identity.ownership_entity_refs == (
        "user:development/guest",
        "group:default/guests",
        "group:default/readers",
    )


async def test_catalog_user_wins_over_configured_ownership(anyio_backend: str) -> None:
    raw = {"userEntityRef": "user:default/visitor", "ownershipEntityRefs": ["group:default/x"]}
    user = CatalogUser(ref="user:default/visitor", member_of=("group:default/team",))
    resolver = _build(raw, development=True).default_resolver
    assert resolver is not None
    identity = await resolver(GUEST_INFO, _context([user]))

    assert identity.ownership_entity_refs == ("user:default/visitor", "group:default/team")


def test_unknown_keys_are_ignored_and_bad_types_named() -> None:
    _build({"somethingElse": 1}, development=True)
    with pytest.raises(ConfigError, match=r"auth\.providers\.guest\.ownershipEntityRefs"):
        _build({"ownershipEntityRefs": "group:default/x"}, development=True)
