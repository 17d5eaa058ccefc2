"""The common sign-in resolvers over the fixture org, read from catalog files."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from app.core.errors import BackstageError, ConflictError, NotFoundError, ServiceUnavailableError
from app.identity.catalog import Catalog
from app.identity.keys import MemoryKeyStore
from app.identity.remote_catalog import DEFAULT_STALE_SECONDS, RemoteCatalog
from app.identity.resolvers import (
    COMMON_RESOLVERS,
    AuthResolverContext,
    SignInResolver,
    build_sign_in_resolver,
)
from app.identity.tokens import TokenIssuer
from app.identity.types import BackstageIdentity, ProfileInfo, SignInInfo
from app.identity.user_info import MemoryUserInfoStore
from tests.catalog.fake_catalog import TOKEN, FakeCatalog, user_entity
from tests.catalog.helpers import fixture_catalog, run
from tests.fakes.clock import FakeClock

PATH = "auth.providers.github.development.signIn.resolvers"
BY_EMAIL = {"resolver": "emailMatchingUserEntityProfileEmail"}
BY_LOCAL_PART = {"resolver": "emailLocalPartMatchingUserEntityName"}


def _context(clock: FakeClock, catalog: Catalog) -> AuthResolverContext:
    issuer = TokenIssuer(
        issuer="http://localhost:7007/api/auth",
        key_store=MemoryKeyStore(),
        clock=clock,
        expiration_seconds=900,
        omit_ownership_claim=False,
        user_info=MemoryUserInfoStore(),
    )
    return AuthResolverContext(issuer, catalog)


def _chain(*entries: dict[str, Any]) -> SignInResolver:
    return build_sign_in_resolver(list(entries), available=COMMON_RESOLVERS, config_path=PATH)


def _sign_in(clock: FakeClock, resolver: SignInResolver, email: str) -> BackstageIdentity:
    info = SignInInfo(provider_id="github", profile=ProfileInfo(email=email))
    return run(resolver(info, _context(clock, fixture_catalog(clock))))


def _claims(identity: BackstageIdentity) -> dict[str, Any]:
    payload = identity.token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


# --- emailMatchingUserEntityProfileEmail --------------------------------------------------


def test_email_match_issues_the_ownership_of_direct_groups(clock: FakeClock) -> None:
    identity = _sign_in(clock, _chain(BY_EMAIL), "jane@acme.com")
    assert identity.user_entity_ref == "user:default/jane"
    assert identity.ownership_entity_refs == (
        "user:default/jane",
        "group:default/frontend",
        "group:default/platform",
    )
    claims = _claims(identity)
    assert claims["sub"] == "user:default/jane"
    assert claims["ent"] == list(identity.ownership_entity_refs)


def test_email_match_is_case_insensitive_and_ownership_crosses_namespaces(
    clock: FakeClock,
) -> None:
    bob = _sign_in(clock, _chain(BY_EMAIL), "BOB.builder@acme.COM")
    assert bob.ownership_entity_refs == ("user:default/bob", "group:default/backend")
    dave = _sign_in(clock, _chain(BY_EMAIL), "dave@acme.com")
    assert dave.ownership_entity_refs == (
        "user:default/dave",
        "group:partners/guests",
        "group:default/sales",
    )
    partner = _sign_in(clock, _chain(BY_EMAIL), "jane@partner.example")
    assert partner.ownership_entity_refs == ("user:partners/jane", "group:partners/guests")


def test_email_match_retries_without_plus_addressing(clock: FakeClock) -> None:
    identity = _sign_in(clock, _chain(BY_EMAIL), "jane+github@acme.com")
    assert identity.user_entity_ref == "user:default/jane"


def test_a_catalog_email_with_plus_matches_as_is(clock: FakeClock) -> None:
    identity = _sign_in(clock, _chain(BY_EMAIL), "ops+alerts@acme.com")
    assert identity.ownership_entity_refs == ("user:default/ops", "group:default/backend")
    # The plain address is not ops' address.
    with pytest.raises(BackstageError, match="Failed to sign-in, unable to resolve"):
        _sign_in(clock, _chain(BY_EMAIL), "ops@acme.com")


def test_email_match_not_found(clock: FakeClock) -> None:
    resolver = COMMON_RESOLVERS["emailMatchingUserEntityProfileEmail"]({})
    with pytest.raises(NotFoundError, match="User not found"):
        _sign_in(clock, resolver, "nobody+x@acme.com")


def test_duplicate_email_is_a_conflict_that_aborts_the_chain(clock: FakeClock) -> None:
    # A user named "shared" exists: the next resolver would have found it.
    with pytest.raises(ConflictError, match="User lookup resulted in multiple matches"):
        _sign_in(clock, _chain(BY_EMAIL, BY_LOCAL_PART), "shared@acme.com")
    identity = _sign_in(clock, _chain(BY_LOCAL_PART), "shared@acme.com")
    assert identity.ownership_entity_refs == ("user:default/shared",)


# --- emailLocalPartMatchingUserEntityName -------------------------------------------------


def test_local_part_matches_the_user_name_in_the_default_namespace(clock: FakeClock) -> None:
    identity = _sign_in(clock, _chain(BY_LOCAL_PART), "Jane@elsewhere.example")
    assert identity.user_entity_ref == "user:default/jane"
    assert identity.ownership_entity_refs == (
        "user:default/jane",
        "group:default/frontend",
        "group:default/platform",
    )
    # carol lives in the partners namespace only.
    with pytest.raises(BackstageError, match="Failed to sign-in"):
        _sign_in(clock, _chain(BY_LOCAL_PART), "carol@partner.example")


def test_not_found_moves_on_to_the_next_resolver(clock: FakeClock) -> None:
    identity = _sign_in(clock, _chain(BY_EMAIL, BY_LOCAL_PART), "bob@gmail.com")
    assert identity.ownership_entity_refs == ("user:default/bob", "group:default/backend")


def test_all_not_found(clock: FakeClock) -> None:
    with pytest.raises(BackstageError) as info:
        _sign_in(clock, _chain(BY_EMAIL, BY_LOCAL_PART), "mallory@contractor.example")
    assert not isinstance(info.value, NotFoundError)
    assert info.value.message.startswith("Failed to sign-in, unable to resolve user identity.")


def test_dangerous_fallback_still_prefers_the_catalog(clock: FakeClock) -> None:
    options = {**BY_LOCAL_PART, "dangerouslyAllowSignInWithoutUserInCatalog": True}
    bob = _sign_in(clock, _chain(options), "bob@acme.com")
    assert bob.ownership_entity_refs == ("user:default/bob", "group:default/backend")
    ghost = _sign_in(clock, _chain(options), "ghost@acme.com")
    assert ghost.ownership_entity_refs == ("user:default/ghost",)


# --- the same through the remote catalog --------------------------------------------------


def test_resolvers_over_the_remote_catalog(clock: FakeClock) -> None:
    fake = FakeCatalog(
        [
            user_entity("jane", email="jane@acme.com", member_of=["group:default/frontend"]),
            user_entity("twin1", email="shared@acme.com"),
            user_entity("twin2", email="shared@acme.com"),
        ]
    )
    catalog = RemoteCatalog(
        "https://backstage.acme.example", TOKEN, clock=clock, transport=fake.transport()
    )
    ctx = _context(clock, catalog)
    chain = _chain(BY_EMAIL, BY_LOCAL_PART)

    def sign_in(email: str) -> BackstageIdentity:
        return run(chain(SignInInfo(provider_id="github", profile=ProfileInfo(email=email)), ctx))

    assert sign_in("jane+x@acme.com").ownership_entity_refs == (
        "user:default/jane",
        "group:default/frontend",
    )
    assert sign_in("jane@gmail.com").user_entity_ref == "user:default/jane"
    with pytest.raises(ConflictError):
        sign_in("shared@acme.com")
    fake.fail = 503
    clock.advance(60 + DEFAULT_STALE_SECONDS)  # past the cached answer
    with pytest.raises(ServiceUnavailableError):  # not a not-found: the chain stops
        sign_in("jane@gmail.com")
