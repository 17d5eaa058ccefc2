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
    ProxyFactory,
    ProxyProviderDefinition,
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


def _proxy(factory: ProxyFactory, resolvers: Mapping[str, ResolverFactory]) -> ProviderDefinition:
    # The same rule as _oauth: Backstage's common resolvers, then the module's own
    # (which win on a name they share, as awsalb's email variant does).
    return ProxyProviderDefinition(factory=factory, resolvers={**COMMON_RESOLVERS, **resolvers})


# Every provider module exports RESOLVERS: the sign-in resolvers it adds to Backstage's
# common ones (openshift: the only ones it offers).
REGISTRY: Mapping[str, ProviderDefinition] = {
    "oidc": _oauth(oidc.create, describe_sign_out=oidc.describe_sign_out),
    "oauth2": _oauth(oauth2.create),
    "github": _oauth(github.create, github.RESOLVERS),
    "gitlab": _oauth(gitlab.create, gitlab.RESOLVERS),
    "google": _oauth(google.create, google.RESOLVERS),
    "microsoft": _oauth(microsoft.create, microsoft.RESOLVERS),
    "okta": _oauth(okta.create, okta.RESOLVERS),
    "auth0": OAuthProviderDefinition(
        factory=auth0.create,
        resolvers=COMMON_RESOLVERS,
        start_params=auth0.START_PARAMS,
        describe_sign_out=auth0.describe_sign_out,
    ),
    "bitbucket": _oauth(bitbucket.create, bitbucket.RESOLVERS),
    # Backstage lists the common resolvers after its own email variant, so the common
    # one is what actually runs.
    "bitbucketServer": _oauth(bitbucket_server.create),
    "atlassian": _oauth(atlassian.create, atlassian.RESOLVERS),
    "onelogin": _oauth(onelogin.create, onelogin.RESOLVERS),
    # OpenShift offers only its own resolver (no common ones).
    "openshift": OAuthProviderDefinition(factory=openshift.create, resolvers=openshift.RESOLVERS),
    # The target cluster (/start?audience=) rides in the state to the callback.
    "pinniped": OAuthProviderDefinition(
        factory=pinniped.create,
        resolvers=COMMON_RESOLVERS,
        start_params=pinniped.START_PARAMS,
    ),
    # Guest signs in with its own default resolver unless config names one.
    "guest": _proxy(guest.create, {}),
    "awsalb": _proxy(awsalb.create, awsalb.RESOLVERS),
    "gcpIap": _proxy(gcp_iap.create, gcp_iap.RESOLVERS),
    "cfaccess": _proxy(cfaccess.create, cfaccess.RESOLVERS),
    "oauth2Proxy": _proxy(oauth2_proxy.create, oauth2_proxy.RESOLVERS),
    "azureEasyAuth": _proxy(azure_easyauth.create, azure_easyauth.RESOLVERS),
}
