"""Provider-specific sign-in resolvers: one profile value matched against the catalog.

Two shapes cover the github, gitlab, google, microsoft and okta modules
(``plugins/auth-backend-module-<id>-provider/src/resolvers.ts``):

- ``matching_entity_name``: the value is the User entity's name
  (``usernameMatchingUserEntityName``);
- ``matching_annotation``: the value equals an annotation of exactly one User
  (``emailMatchingUserEntityAnnotation``, ``userIdMatchingUserEntityAnnotation``).

Values come from ``SignInInfo.profile`` or from the facts the provider put in
``SignInInfo.result``. Every resolver takes ``dangerouslyAllowSignInWithoutUserInCatalog``:
a user missing from the catalog then signs in as ``user:default/<value>``.
``GITHUB_RESOLVERS`` ... ``OKTA_RESOLVERS`` are each module's table, for the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from app.core.errors import BackstageError, NotFoundError
from app.identity.entity_ref import DEFAULT_NAMESPACE, stringify_entity_ref
from app.identity.resolvers import (
    AuthResolverContext,
    ResolverFactory,
    SignInResolver,
    refuse_unverified_email,
    validate_options,
)
from app.identity.types import BackstageIdentity, SignInInfo

ValueReader = Callable[[SignInInfo], str | None]
AnnotationKey = Callable[[SignInInfo], str]

_OPTIONS: Mapping[str, tuple[Callable[[Any], bool], str]] = {
    "dangerouslyAllowSignInWithoutUserInCatalog": (lambda v: isinstance(v, bool), "a boolean"),
}


def fact(name: str) -> ValueReader:
    """A string the provider put in ``SignInInfo.result`` (``username``, ``user_id``, ...)."""

    def read(info: SignInInfo) -> str | None:
        value = info.result.get(name)
        return value if isinstance(value, str) and value else None

    return read


def profile_email(info: SignInInfo) -> str | None:
    if info.profile.email:
        refuse_unverified_email(info)
    return info.profile.email or None


def fixed(annotation: str) -> AnnotationKey:
    return lambda info: annotation


def host_of_fact(name: str, suffix: str, missing: str) -> AnnotationKey:
    """``<host of a URL fact><suffix>``: GitLab's ``<gitlab host>/user-id``."""

    def key(info: SignInInfo) -> str:
        url = fact(name)(info)
        host = urlsplit(url).hostname if url else None
        if not host:
            raise BackstageError(missing)
        return host + suffix

    return key


def _user_ref(name: str) -> str:
    # Built, not parsed, so a ':' or '/' in the value stays in the name.
    return stringify_entity_ref("user", DEFAULT_NAMESPACE, name)


def matching_entity_name(read: ValueReader, *, missing: str) -> ResolverFactory:
    """Sign in as ``user:default/<value>``; ``missing`` when the profile has no value."""

    def factory(options: Mapping[str, Any]) -> SignInResolver:
        validate_options(options, _OPTIONS)
        dangerous = bool(options.get("dangerouslyAllowSignInWithoutUserInCatalog", False))

        async def resolve(info: SignInInfo, ctx: AuthResolverContext) -> BackstageIdentity:
            value = read(info)
            if not value:
                raise BackstageError(missing)
            return await ctx.sign_in_with_catalog_user(
                entity_ref=_user_ref(value),
                dangerously_allow_sign_in_without_user_in_catalog=dangerous,
                fallback_name=value,
            )

        return resolve

    return factory


def matching_annotation(
    read: ValueReader,
    annotation: AnnotationKey,
    *,
    missing: str,
    mismatch: str | None = None,
) -> ResolverFactory:
    """Sign in as the one User whose annotation equals the value.

    The catalog compares values case-insensitively; with ``mismatch`` the match must also
    be exact (GitHub node ids differ only by case), else that message is raised.
    """

    def factory(options: Mapping[str, Any]) -> SignInResolver:
        validate_options(options, _OPTIONS)
        dangerous = bool(options.get("dangerouslyAllowSignInWithoutUserInCatalog", False))

        async def resolve(info: SignInInfo, ctx: AuthResolverContext) -> BackstageIdentity:
            value = read(info)
            if not value:
                raise BackstageError(missing)
            key = annotation(info)
            if mismatch is None:
                return await ctx.sign_in_with_catalog_user(
                    annotations={key: value},
                    dangerously_allow_sign_in_without_user_in_catalog=dangerous,
                    fallback_name=value,
                )
            try:
                user = await ctx.find_catalog_user(annotations={key: value})
            except NotFoundError:
                if not dangerous:
                    raise
                return await ctx.issue_token(sub=_user_ref(value))
            if user.annotations.get(key) != value:
                raise BackstageError(mismatch)
            return await ctx.sign_in_with_catalog_user(entity_ref=user.ref)

        return resolve

    return factory


# -- each module's resolvers; the facts are the keys its provider puts in SignInInfo.result --

GITHUB_RESOLVERS: dict[str, ResolverFactory] = {
    # Deprecated in Backstage: usernames can change and be reassigned.
    "usernameMatchingUserEntityName": matching_entity_name(
        fact("username"), missing="GitHub user profile does not contain a username"
    ),
    "userIdMatchingUserEntityAnnotation": matching_annotation(
        fact("node_id"),
        fixed("github.com/user-id"),
        missing="GitHub user profile does not contain a user ID",
        mismatch="GitHub user ID does not match the catalog user",
    ),
}

GITLAB_RESOLVERS: dict[str, ResolverFactory] = {
    "usernameMatchingUserEntityName": matching_entity_name(
        fact("username"), missing="GitLab user profile does not contain a username"
    ),
    # The annotation is per GitLab instance: <host of the user's web_url>/user-id.
    "userIdMatchingUserEntityAnnotation": matching_annotation(
        fact("user_id"),
        host_of_fact(
            "profile_url", "/user-id", "GitLab user profile does not contain a profile URL"
        ),
        missing="GitLab user profile does not contain a user ID",
    ),
}

GOOGLE_RESOLVERS: dict[str, ResolverFactory] = {
    "emailMatchingUserEntityAnnotation": matching_annotation(
        profile_email, fixed("google.com/email"), missing="Google profile contained no email"
    ),
}

MICROSOFT_RESOLVERS: dict[str, ResolverFactory] = {
    "emailMatchingUserEntityAnnotation": matching_annotation(
        profile_email, fixed("microsoft.com/email"), missing="Microsoft profile contained no email"
    ),
    "userIdMatchingUserEntityAnnotation": matching_annotation(
        fact("user_id"),
        fixed("graph.microsoft.com/user-id"),
        missing="Microsoft profile contained no id",
    ),
}

OKTA_RESOLVERS: dict[str, ResolverFactory] = {
    "emailMatchingUserEntityAnnotation": matching_annotation(
        profile_email, fixed("okta.com/email"), missing="Okta profile contained no email"
    ),
}
