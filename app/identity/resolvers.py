"""Sign-in resolvers: from a provider's profile to a Backstage identity.

Semantics follow ``@backstage/plugin-auth-node`` (``commonSignInResolvers``,
``readDeclarativeSignInResolver``) and ``CatalogAuthResolverContext``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeAlias

from app.core.errors import (
    BackstageError,
    ConflictError,
    InputError,
    NotAllowedError,
    NotFoundError,
)
from app.identity.catalog import Catalog, CatalogUser
from app.identity.entity_ref import DEFAULT_NAMESPACE, canonical_entity_ref, stringify_entity_ref
from app.identity.tokens import TokenIssuer, canonicalize_identity
from app.identity.types import BackstageIdentity, SignInInfo


class ResolverConfigError(Exception):
    """A ``signIn.resolvers`` entry that cannot be used; raised at startup."""


class AuthResolverContext:
    """What resolvers may do: look users up in the catalog and issue tokens."""

    def __init__(self, token_issuer: TokenIssuer, catalog: Catalog) -> None:
        self._token_issuer = token_issuer
        self._catalog = catalog

    @property
    def token_issuer(self) -> TokenIssuer:
        return self._token_issuer

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    # What the resolver chain reports; a tracing context (sign_in_trace) records it.
    def resolver_started(self, name: str) -> None:
        pass

    def resolver_stopped(self, name: str, exc: BaseException) -> None:
        pass

    async def issue_token(
        self,
        *,
        sub: str,
        ent: Sequence[str] | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> BackstageIdentity:
        sub, ownership = canonicalize_identity(sub, [sub] if ent is None else ent)
        token = await self._token_issuer.issue_token(
            sub=sub, ent=ownership, extra_claims=extra_claims
        )
        return BackstageIdentity(
            token=token,
            user_entity_ref=sub,
            ownership_entity_refs=ownership,
            expires_in_seconds=self._token_issuer.expiration_seconds,
        )

    async def find_catalog_user(
        self,
        *,
        entity_ref: str | None = None,
        annotations: Mapping[str, str] | None = None,
        email: str | None = None,
    ) -> CatalogUser:
        """Exactly one matching user; an entity ref wins over the other filters."""
        if entity_ref is not None:
            ref = canonical_entity_ref(entity_ref, default_kind="User")
            user = await self._catalog.get_user(ref)
            matches = [user] if user is not None else []
        elif annotations is not None or email is not None:
            matches = await self._catalog.find_users(annotations=annotations, email=email)
        else:
            raise InputError("Invalid user lookup query")
        if len(matches) > 1:
            raise ConflictError("User lookup resulted in multiple matches")
        if not matches:
            raise NotFoundError("User not found")
        return matches[0]

    async def sign_in_with_catalog_user(
        self,
        *,
        entity_ref: str | None = None,
        annotations: Mapping[str, str] | None = None,
        email: str | None = None,
        dangerously_allow_sign_in_without_user_in_catalog: bool = False,
        fallback_name: str | None = None,
    ) -> BackstageIdentity:
        """Sign in as the matching user; ownership is the user plus its groups.

        With the dangerous flag, a missing user becomes ``user:default/<fallback_name>``.
        """
        if dangerously_allow_sign_in_without_user_in_catalog and fallback_name is None:
            raise ValueError("fallback_name is required to sign in without a catalog user")
        try:
            user = await self.find_catalog_user(
                entity_ref=entity_ref, annotations=annotations, email=email
            )
        except NotFoundError:
            if not dangerously_allow_sign_in_without_user_in_catalog or fallback_name is None:
                raise
            ref = stringify_entity_ref("user", DEFAULT_NAMESPACE, fallback_name)
            return await self.issue_token(sub=ref, ent=[ref])
        groups = [ref for ref in user.member_of if ref.startswith("group:")]
        return await self.issue_token(sub=user.ref, ent=[user.ref, *groups])


SignInResolver: TypeAlias = Callable[
    [SignInInfo, AuthResolverContext], Awaitable[BackstageIdentity]
]
ResolverFactory: TypeAlias = Callable[[Mapping[str, Any]], SignInResolver]

_OptionSpec: TypeAlias = Mapping[str, tuple[Callable[[Any], bool], str]]


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


_DANGEROUS_FLAG: _OptionSpec = {
    "dangerouslyAllowSignInWithoutUserInCatalog": (_is_bool, "a boolean"),
}
_EMAIL_OPTIONS: _OptionSpec = {
    # Backstage's schema accepts allowedDomains here too, though only the local-part
    # resolver uses it; accepting it keeps such configs starting.
    "allowedDomains": (_is_str_list, "a list of strings"),
    **_DANGEROUS_FLAG,
}


def validate_options(options: Mapping[str, Any], spec: _OptionSpec) -> None:
    """Reject unknown and mistyped options with a message naming the option."""
    for name, value in options.items():
        if name not in spec:
            expected = ", ".join(spec) or "none"
            raise ResolverConfigError(
                f"Invalid sign-in resolver options, unknown option '{name}' (allowed: {expected})"
            )
        check, description = spec[name]
        if not check(value):
            raise ResolverConfigError(
                f"Invalid sign-in resolver options, '{name}' must be {description}"
            )


UNVERIFIED_EMAIL = "Login failed, the identity provider says the user's email is not verified"


def refuse_unverified_email(info: SignInInfo) -> None:
    """E-mail matching signs in whoever owns the address: an address the provider has not
    verified may be anyone's (the nOAuth class of attacks)."""
    if info.email_unverified:
        raise BackstageError(UNVERIFIED_EMAIL)


def _require_email(info: SignInInfo) -> str:
    email = info.profile.email
    if not email:
        raise BackstageError("Login failed, user profile does not contain an email")
    refuse_unverified_email(info)
    return email


# "joe+work@acme.com" -> ("joe", "+work", "@acme.com"); the plus part is optional.
_PLUS_ADDRESSED = re.compile(r"^([^@+]+)(\+[^@]+)?(@.*)$", re.DOTALL)


def email_matching_user_entity_profile_email(options: Mapping[str, Any]) -> SignInResolver:
    validate_options(options, _EMAIL_OPTIONS)
    dangerous = bool(options.get("dangerouslyAllowSignInWithoutUserInCatalog", False))

    async def resolve(info: SignInInfo, ctx: AuthResolverContext) -> BackstageIdentity:
        email = _require_email(info)
        try:
            return await ctx.sign_in_with_catalog_user(email=email)
        except NotFoundError:
            match = _PLUS_ADDRESSED.match(email)
            if match is None:
                raise
            # Backstage retries even without plus addressing; only this retry may fall back.
            plain = match.group(1) + match.group(3)
            return await ctx.sign_in_with_catalog_user(
                email=plain,
                dangerously_allow_sign_in_without_user_in_catalog=dangerous,
                fallback_name=plain,
            )

    return resolve


def email_local_part_matching_user_entity_name(options: Mapping[str, Any]) -> SignInResolver:
    validate_options(options, _EMAIL_OPTIONS)
    allowed_domains: list[str] | None = options.get("allowedDomains")
    dangerous = bool(options.get("dangerouslyAllowSignInWithoutUserInCatalog", False))

    async def resolve(info: SignInInfo, ctx: AuthResolverContext) -> BackstageIdentity:
        email = _require_email(info)
        local_part = email.split("@", 1)[0]
        domain = email[len(local_part) + 1 :]
        if allowed_domains is not None and domain not in allowed_domains:
            raise NotAllowedError("Sign-in user email is not from an allowed domain")
        return await ctx.sign_in_with_catalog_user(
            # Built, not parsed, so a ':' or '/' in the local part stays in the name.
            entity_ref=stringify_entity_ref("user", DEFAULT_NAMESPACE, local_part),
            dangerously_allow_sign_in_without_user_in_catalog=dangerous,
            fallback_name=local_part,
        )

    return resolve


COMMON_RESOLVERS: dict[str, ResolverFactory] = {
    "emailMatchingUserEntityProfileEmail": email_matching_user_entity_profile_email,
    "emailLocalPartMatchingUserEntityName": email_local_part_matching_user_entity_name,
}

_ALL_NOT_FOUND = (
    "Failed to sign-in, unable to resolve user identity. Please verify that your catalog "
    "contains the expected User entities that would match your configured sign-in resolver."
)


def build_sign_in_resolver(
    resolvers_config: Sequence[Mapping[str, Any]],
    *,
    available: Mapping[str, ResolverFactory],
    config_path: str,
) -> SignInResolver:
    """One resolver trying each configured one in order; a not-found moves on to the next.

    An empty list is a configuration without sign-in: callers check for it first.
    """
    if not resolvers_config:
        raise ResolverConfigError(f"{config_path}: no sign-in resolvers are configured")
    chain: list[tuple[str, SignInResolver]] = []
    for entry in resolvers_config:
        name = entry.get("resolver")
        if not isinstance(name, str) or not name:
            raise ResolverConfigError(
                f"{config_path}: each sign-in resolver needs a 'resolver' name"
            )
        factory = available.get(name)
        if factory is None:
            raise ResolverConfigError(f"{config_path}: Sign-in resolver '{name}' is not available")
        options = {k: v for k, v in entry.items() if k != "resolver"}
        try:
            chain.append((name, factory(options)))
        except ResolverConfigError as err:
            raise ResolverConfigError(f"{config_path}: sign-in resolver '{name}': {err}") from err

    async def resolve(info: SignInInfo, ctx: AuthResolverContext) -> BackstageIdentity:
        for name, resolver in chain:
            ctx.resolver_started(name)
            try:
                return await resolver(info, ctx)
            except NotFoundError as exc:
                ctx.resolver_stopped(name, exc)
                continue
            except Exception as exc:
                ctx.resolver_stopped(name, exc)
                raise
        raise BackstageError(_ALL_NOT_FOUND)

    return resolve
