from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

import pytest

from app.core.errors import (
    BackstageError,
    ConflictError,
    InputError,
    NotAllowedError,
    NotFoundError,
)
from app.identity.catalog import CatalogUser, InMemoryCatalog
from app.identity.keys import MemoryKeyStore
from app.identity.resolvers import (
    COMMON_RESOLVERS,
    AuthResolverContext,
    ResolverConfigError,
    ResolverFactory,
    SignInResolver,
    build_sign_in_resolver,
)
from app.identity.tokens import TokenIssuer
from app.identity.types import BackstageIdentity, ProfileInfo, SignInInfo
from app.identity.user_info import MemoryUserInfoStore

pytestmark = pytest.mark.anyio

JANE = CatalogUser(
    ref="user:default/jane",
    email="jane@acme.com",
    annotations={"github.com/user-id": "123"},
    member_of=("group:default/team-a", "group:default/team-b", "location:default/x"),
)
JOE = CatalogUser(ref="user:default/joe", email="joe@acme.com", annotations={})
TWIN_1 = CatalogUser(ref="user:default/twin1", email="twin@acme.com")
TWIN_2 = CatalogUser(ref="user:other/twin2", email="TWIN@acme.com")

PATH = "auth.providers.github.development.signIn.resolvers"


def _context(clock: Any, users: Sequence[CatalogUser] = (JANE, JOE, TWIN_1, TWIN_2)) -> Any:
    user_info = MemoryUserInfoStore()
    issuer = TokenIssuer(
        issuer="http://localhost:7007/api/auth",
        key_store=MemoryKeyStore(),
        clock=clock,
        expiration_seconds=900,
        user_info=user_info,
    )
    return AuthResolverContext(issuer, InMemoryCatalog(users)), user_info


def _info(email: str | None) -> SignInInfo:
    return SignInInfo(provider_id="github", profile=ProfileInfo(email=email))


def _sub(identity: BackstageIdentity) -> str:
    payload = identity.token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"])


async def _awaited(result: Awaitable[BackstageIdentity]) -> BackstageIdentity:
    return await result


def _resolve(clock: Any, resolver: SignInResolver, email: str | None) -> BackstageIdentity:
    ctx, _ = _context(clock)
    return asyncio.run(_awaited(resolver(_info(email), ctx)))


def _common(name: str, **options: Any) -> SignInResolver:
    return COMMON_RESOLVERS[name](options)


# --- AuthResolverContext ---------------------------------------------------------------


async def test_issue_token_defaults_ent_to_sub_and_canonicalises(clock) -> None:
    ctx, user_info = _context(clock)
    identity = await ctx.issue_token(sub="User:Default/Jane", extra_claims={"k": "v"})
    assert identity.user_entity_ref == "user:default/Jane"
    assert identity.ownership_entity_refs == ("user:default/Jane",)
    assert identity.expires_in_seconds == 900
    assert _sub(identity) == "user:default/Jane"
    assert await user_info.get("user:default/Jane") == {
        "claims": {"sub": "user:default/Jane", "ent": ["user:default/Jane"], "k": "v"}
    }


async def test_issue_token_invalid_sub(clock) -> None:
    ctx, _ = _context(clock)
    with pytest.raises(InputError, match="not a valid EntityRef"):
        await ctx.issue_token(sub="jane")


async def test_find_catalog_user(clock) -> None:
    ctx, _ = _context(clock)

    assert await ctx.find_catalog_user(entity_ref="jane") == JANE
    assert await ctx.find_catalog_user(entity_ref="User:Default/Jane") == JANE
    assert await ctx.find_catalog_user(annotations={"github.com/user-id": "123"}) == JANE
    assert await ctx.find_catalog_user(email="JOE@acme.com") == JOE
    with pytest.raises(NotFoundError, match="^User not found$"):
        await ctx.find_catalog_user(entity_ref="group:default/jane")
    with pytest.raises(NotFoundError, match="^User not found$"):
        await ctx.find_catalog_user(annotations={"github.com/user-id": "999"})
    with pytest.raises(ConflictError, match="^User lookup resulted in multiple matches$"):
        await ctx.find_catalog_user(email="twin@acme.com")
    with pytest.raises(InputError, match="Invalid user lookup query"):
        await ctx.find_catalog_user()


async def test_sign_in_with_catalog_user_ownership(clock) -> None:
    ctx, user_info = _context(clock)
    identity = await ctx.sign_in_with_catalog_user(email="jane@acme.com")
    assert identity.user_entity_ref == "user:default/jane"
    # The user plus its group memberships only.
    assert identity.ownership_entity_refs == (
        "user:default/jane",
        "group:default/team-a",
        "group:default/team-b",
    )
    stored = await user_info.get("user:default/jane")
    assert stored is not None
    assert stored["claims"]["ent"] == list(identity.ownership_entity_refs)


async def test_sign_in_with_catalog_user_dangerous_fallback(clock) -> None:
    ctx, _ = _context(clock)

    with pytest.raises(NotFoundError):
        await ctx.sign_in_with_catalog_user(entity_ref="nobody", fallback_name="nobody")
    identity = await ctx.sign_in_with_catalog_user(
        entity_ref="nobody",
        dangerously_allow_sign_in_without_user_in_catalog=True,
        fallback_name="nobody",
    )
    assert identity.user_entity_ref == "user:default/nobody"
    assert identity.ownership_entity_refs == ("user:default/nobody",)
    # A conflict is never papered over.
    with pytest.raises(ConflictError):
        await ctx.sign_in_with_catalog_user(
            email="twin@acme.com",
            dangerously_allow_sign_in_without_user_in_catalog=True,
            fallback_name="twin",
        )


# --- emailMatchingUserEntityProfileEmail ----------------------------------------------


def test_email_matching_profile_email(clock) -> None:
    resolver = _common("emailMatchingUserEntityProfileEmail")
    identity = _resolve(clock, resolver, "Jane@acme.com")
    assert identity.user_entity_ref == "user:default/jane"
    assert "group:default/team-a" in identity.ownership_entity_refs


def test_email_matching_profile_email_strips_plus_addressing(clock) -> None:
    resolver = _common("emailMatchingUserEntityProfileEmail")
    assert _resolve(clock, resolver, "jane+work@acme.com").user_entity_ref == "user:default/jane"


async def test_email_matching_profile_email_prefers_exact_match(clock) -> None:
    plus = CatalogUser(ref="user:default/jane-work", email="jane+work@acme.com")
    ctx, _ = _context(clock, [JANE, plus])
    resolver = _common("emailMatchingUserEntityProfileEmail")
    identity = await _awaited(resolver(_info("jane+work@acme.com"), ctx))
    assert identity.user_entity_ref == "user:default/jane-work"


def test_email_matching_profile_email_not_found(clock) -> None:
    resolver = _common("emailMatchingUserEntityProfileEmail")
    with pytest.raises(NotFoundError, match="User not found"):
        _resolve(clock, resolver, "nobody+x@acme.com")


def test_email_matching_profile_email_dangerous_flag(clock) -> None:
    resolver = _common(
        "emailMatchingUserEntityProfileEmail", dangerouslyAllowSignInWithoutUserInCatalog=True
    )
    identity = _resolve(clock, resolver, "nobody+x@acme.com")
    assert identity.user_entity_ref == "user:default/nobody@acme.com"
    assert identity.ownership_entity_refs == ("user:default/nobody@acme.com",)


def test_email_matching_profile_email_conflict_propagates(clock) -> None:
    resolver = _common("emailMatchingUserEntityProfileEmail")
    with pytest.raises(ConflictError):
        _resolve(clock, resolver, "twin@acme.com")


@pytest.mark.parametrize("name", sorted(COMMON_RESOLVERS))
def test_common_resolvers_need_an_email(clock, name: str) -> None:
    with pytest.raises(BackstageError) as info:
        _resolve(clock, _common(name), None)
    assert type(info.value) is BackstageError
    assert info.value.message == "Login failed, user profile does not contain an email"


# --- emailLocalPartMatchingUserEntityName ---------------------------------------------


def test_email_local_part(clock) -> None:
    resolver = _common("emailLocalPartMatchingUserEntityName")
    identity = _resolve(clock, resolver, "joe@elsewhere.org")
    assert identity.user_entity_ref == "user:default/joe"
    assert identity.ownership_entity_refs == ("user:default/joe",)


def test_email_local_part_allowed_domains(clock) -> None:
    resolver = _common("emailLocalPartMatchingUserEntityName", allowedDomains=["acme.com"])
    assert _resolve(clock, resolver, "joe@acme.com").user_entity_ref == "user:default/joe"
    with pytest.raises(NotAllowedError, match="^Sign-in user email is not from an allowed domain$"):
        _resolve(clock, resolver, "joe@evil.com")
    with pytest.raises(NotAllowedError):
        _resolve(clock, resolver, "joe@sub.acme.com")


def test_email_local_part_not_found_and_dangerous_flag(clock) -> None:
    with pytest.raises(NotFoundError):
        _resolve(clock, _common("emailLocalPartMatchingUserEntityName"), "nobody@acme.com")
    resolver = _common(
        "emailLocalPartMatchingUserEntityName",
        allowedDomains=["acme.com"],
        dangerouslyAllowSignInWithoutUserInCatalog=True,
    )
    identity = _resolve(clock, resolver, "nobody@acme.com")
    assert identity.user_entity_ref == "user:default/nobody"
    assert identity.ownership_entity_refs == ("user:default/nobody",)
    # The domain check still applies with the flag.
    with pytest.raises(NotAllowedError):
        _resolve(clock, resolver, "nobody@evil.com")


# --- option validation ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(COMMON_RESOLVERS))
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"allowedDomain": ["a"]}, "unknown option 'allowedDomain'"),
        ({"allowedDomains": "acme.com"}, "'allowedDomains' must be a list of strings"),
        ({"allowedDomains": [1]}, "'allowedDomains' must be a list of strings"),
        (
            {"dangerouslyAllowSignInWithoutUserInCatalog": "yes"},
            "'dangerouslyAllowSignInWithoutUserInCatalog' must be a boolean",
        ),
    ],
)
def test_invalid_options(name: str, options: Mapping[str, Any], message: str) -> None:
    with pytest.raises(ResolverConfigError, match=message):
        COMMON_RESOLVERS[name](options)


# --- build_sign_in_resolver -----------------------------------------------------------


def _fixed(outcome: BaseException | str, calls: list[str], label: str) -> ResolverFactory:
    def factory(options: Mapping[str, Any]) -> SignInResolver:
        async def resolve(info: SignInInfo, ctx: AuthResolverContext) -> BackstageIdentity:
            calls.append(label)
            if isinstance(outcome, BaseException):
                raise outcome
            return await ctx.issue_token(sub=outcome)

        return resolve

    return factory


def test_chain_moves_on_after_not_found(clock) -> None:
    calls: list[str] = []
    available = {
        "missing": _fixed(NotFoundError("User not found"), calls, "missing"),
        "found": _fixed("user:default/found", calls, "found"),
        "never": _fixed("user:default/never", calls, "never"),
    }
    resolver = build_sign_in_resolver(
        [{"resolver": "missing"}, {"resolver": "found"}, {"resolver": "never"}],
        available=available,
        config_path=PATH,
    )
    assert _resolve(clock, resolver, "x@y").user_entity_ref == "user:default/found"
    assert calls == ["missing", "found"]


def test_chain_aborts_on_other_errors(clock) -> None:
    calls: list[str] = []
    available = {
        "conflict": _fixed(ConflictError("User lookup resulted in multiple matches"), calls, "c"),
        "found": _fixed("user:default/found", calls, "found"),
    }
    resolver = build_sign_in_resolver(
        [{"resolver": "conflict"}, {"resolver": "found"}], available=available, config_path=PATH
    )
    with pytest.raises(ConflictError):
        _resolve(clock, resolver, "x@y")
    assert calls == ["c"]


def test_chain_all_not_found(clock) -> None:
    resolver = build_sign_in_resolver(
        [
            {"resolver": "emailMatchingUserEntityProfileEmail"},
            {"resolver": "emailLocalPartMatchingUserEntityName"},
        ],
        available=COMMON_RESOLVERS,
        config_path=PATH,
    )
    with pytest.raises(BackstageError) as info:
        _resolve(clock, resolver, "nobody@acme.com")
    assert type(info.value) is BackstageError
    assert info.value.name == "Error"
    assert info.value.message == (
        "Failed to sign-in, unable to resolve user identity. Please verify that your catalog "
        "contains the expected User entities that would match your configured sign-in resolver."
    )


def test_chain_with_common_resolvers(clock) -> None:
    resolver = build_sign_in_resolver(
        [
            {"resolver": "emailMatchingUserEntityProfileEmail"},
            {"resolver": "emailLocalPartMatchingUserEntityName", "allowedDomains": ["acme.io"]},
        ],
        available=COMMON_RESOLVERS,
        config_path=PATH,
    )
    # The first misses (no such email), the second matches by local part.
    assert _resolve(clock, resolver, "joe@acme.io").user_entity_ref == "user:default/joe"
    # The second's NotAllowedError is not a not-found: it aborts.
    with pytest.raises(NotAllowedError):
        _resolve(clock, resolver, "joe@other.io")


def test_unknown_resolver_name() -> None:
    with pytest.raises(ResolverConfigError) as info:
        build_sign_in_resolver(
            [{"resolver": "usernameMatchingUserEntityName"}],
            available=COMMON_RESOLVERS,
            config_path=PATH,
        )
    assert str(info.value) == (
        f"{PATH}: Sign-in resolver 'usernameMatchingUserEntityName' is not available"
    )


def test_invalid_options_name_the_config_path() -> None:
    with pytest.raises(ResolverConfigError) as info:
        build_sign_in_resolver(
            [{"resolver": "emailLocalPartMatchingUserEntityName", "allowedDomains": "a.com"}],
            available=COMMON_RESOLVERS,
            config_path=PATH,
        )
    assert str(info.value).startswith(
        f"{PATH}: sign-in resolver 'emailLocalPartMatchingUserEntityName': "
        "Invalid sign-in resolver options"
    )


@pytest.mark.parametrize("entries", [[], [{}], [{"resolver": 3}]])
def test_malformed_resolver_lists(entries: list[dict[str, Any]]) -> None:
    with pytest.raises(ResolverConfigError, match=f"^{PATH}: "):
        build_sign_in_resolver(entries, available=COMMON_RESOLVERS, config_path=PATH)


# --- email_verified: false (issue 15, item 11: nOAuth) ------------------------------------


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("emailMatchingUserEntityProfileEmail", {}),
        (
            "emailMatchingUserEntityProfileEmail",
            {"dangerouslyAllowSignInWithoutUserInCatalog": True},
        ),
        ("emailLocalPartMatchingUserEntityName", {}),
        ("emailLocalPartMatchingUserEntityName", {"allowedDomains": ["acme.com"]}),
    ],
)
async def test_email_resolvers_refuse_an_address_the_provider_has_not_verified(
    clock: Any, name: str, options: dict[str, Any]
) -> None:
    resolver = _common(name, **options)
    ctx, _ = _context(clock)
    unverified = SignInInfo("oidc", ProfileInfo(email="jane@acme.com"), {"email_verified": False})
    with pytest.raises(BackstageError, match="^Login failed, the identity provider says the "):
        await _awaited(resolver(unverified, ctx))
    # Verified, or not said either way (most providers say nothing): signs in.
    for result in ({"email_verified": True}, {}):
        info = SignInInfo("oidc", ProfileInfo(email="jane@acme.com"), result)
        assert _sub(await _awaited(resolver(info, ctx))) == "user:default/jane"
