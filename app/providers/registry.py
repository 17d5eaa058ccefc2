"""Provider id -> definition. Ids and casing are Backstage's."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from app.identity.resolvers import COMMON_RESOLVERS, ResolverFactory
from app.providers import (
    atlassian,
    auth0,
    awsalb,
    azure_easyauth,
    bitbucket,
    bitbucket_server,
    cfaccess,
    gcp_iap,
    github,
    gitlab,
    google,
    guest,
    microsoft,
    oauth2,
    oauth2_proxy,
    oidc,
    okta,
    onelogin,
    openshift,
    pinniped,
)
from app.providers.registry_types import (
    OAuthFactory,
    OAuthProviderDefinition,
    ProviderDefinition,
    ProxyProviderDefinition,
)
from app.providers.resolvers_profile import (
    GITHUB_RESOLVERS,
    GITLAB_RESOLVERS,
    GOOGLE_RESOLVERS,
    MICROSOFT_RESOLVERS,
    OKTA_RESOLVERS,
)


def _oauth(
    factory: OAuthFactory,
    resolvers: Mapping[str, ResolverFactory] | None = None,
    *,
    describe_sign_out: Callable[[Mapping[str, Any]], str] | None = None,
) -> ProviderDefinition:
    # Every OAuth provider module offers Backstage's common resolvers plus its own.
    return OAuthProviderDefinition(
        factory=factory,
        resolvers={**COMMON_RESOLVERS, **(resolvers or {})},
        describe_sign_out=describe_sign_out,
    )


REGISTRY: Mapping[str, ProviderDefinition] = {
    "oidc": _oauth(oidc.create, describe_sign_out=oidc.describe_sign_out),
    "oauth2": _oauth(oauth2.create),
    "github": _oauth(github.create, GITHUB_RESOLVERS),
    "gitlab": _oauth(gitlab.create, GITLAB_RESOLVERS),
    "google": _oauth(google.create, GOOGLE_RESOLVERS),
    "microsoft": _oauth(microsoft.create, MICROSOFT_RESOLVERS),
    "okta": _oauth(okta.create, OKTA_RESOLVERS),
    "auth0": OAuthProviderDefinition(
        factory=auth0.create,
        resolvers=COMMON_RESOLVERS,
        start_params=auth0.START_PARAMS,
        describe_sign_out=auth0.describe_sign_out,
    ),
    "bitbucket": _oauth(bitbucket.create, bitbucket.SIGN_IN_RESOLVERS),
    # Backstage lists the common resolvers after its own email variant, so the common
    # one is what actually runs.
    "bitbucketServer": _oauth(bitbucket_server.create),
    "atlassian": _oauth(atlassian.create, atlassian.SIGN_IN_RESOLVERS),
    "onelogin": _oauth(onelogin.create, onelogin.SIGN_IN_RESOLVERS),
    # OpenShift offers only its own resolver (no common ones).
    "openshift": OAuthProviderDefinition(
        factory=openshift.create, resolvers=openshift.SIGN_IN_RESOLVERS
    ),
    # The target cluster (/start?audience=) rides in the state to the callback.
    "pinniped": OAuthProviderDefinition(
        factory=pinniped.create,
        resolvers=COMMON_RESOLVERS,
        start_params=pinniped.START_PARAMS,
    ),
    "guest": ProxyProviderDefinition(factory=guest.create),
    "awsalb": ProxyProviderDefinition(factory=awsalb.create, resolvers=awsalb.RESOLVERS),
    "gcpIap": ProxyProviderDefinition(factory=gcp_iap.create, resolvers=gcp_iap.RESOLVERS),
    "cfaccess": ProxyProviderDefinition(factory=cfaccess.create, resolvers=cfaccess.RESOLVERS),
    "oauth2Proxy": ProxyProviderDefinition(
        factory=oauth2_proxy.create, resolvers=oauth2_proxy.RESOLVERS
    ),
    "azureEasyAuth": ProxyProviderDefinition(
        factory=azure_easyauth.create, resolvers=azure_easyauth.RESOLVERS
    ),
}
