"""Provider id -> definition. Ids and casing are Backstage's."""

from __future__ import annotations

from collections.abc import Mapping

from app.identity.resolvers import COMMON_RESOLVERS, ResolverFactory
from app.providers import github, gitlab, google, guest, microsoft, oauth2, oidc, okta
from app.providers.registry_types import OAuthFactory, ProviderDefinition
from app.providers.resolvers_profile import (
    GITHUB_RESOLVERS,
    GITLAB_RESOLVERS,
    GOOGLE_RESOLVERS,
    MICROSOFT_RESOLVERS,
    OKTA_RESOLVERS,
)


def _oauth(
    factory: OAuthFactory, resolvers: Mapping[str, ResolverFactory] | None = None
) -> ProviderDefinition:
    # Every OAuth provider module offers Backstage's common resolvers plus its own.
    return ProviderDefinition(
        kind="oauth", factory=factory, resolvers={**COMMON_RESOLVERS, **(resolvers or {})}
    )


REGISTRY: Mapping[str, ProviderDefinition] = {
    "oidc": _oauth(oidc.create),
    "oauth2": _oauth(oauth2.create),
    "github": _oauth(github.create, GITHUB_RESOLVERS),
    "gitlab": _oauth(gitlab.create, GITLAB_RESOLVERS),
    "google": _oauth(google.create, GOOGLE_RESOLVERS),
    "microsoft": _oauth(microsoft.create, MICROSOFT_RESOLVERS),
    "okta": _oauth(okta.create, OKTA_RESOLVERS),
    "guest": ProviderDefinition(kind="proxy", factory=guest.create),
}
