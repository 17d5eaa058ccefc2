"""Once ``app.providers.registry.REGISTRY`` lists the proxy providers, they are wired as
the tests here assume."""

from __future__ import annotations

import pytest

from app.identity.resolvers import COMMON_RESOLVERS
from app.providers import awsalb, azure_easyauth, cfaccess, gcp_iap, oauth2_proxy
from app.providers.registry import REGISTRY

EXPECTED = {
    "awsalb": (awsalb.create, awsalb.RESOLVERS),
    "gcpIap": (gcp_iap.create, gcp_iap.RESOLVERS),
    "cfaccess": (cfaccess.create, cfaccess.RESOLVERS),
    "oauth2Proxy": (oauth2_proxy.create, oauth2_proxy.RESOLVERS),
    "azureEasyAuth": (azure_easyauth.create, azure_easyauth.RESOLVERS),
}


@pytest.mark.parametrize("provider", list(EXPECTED))
def test_registered_as_a_proxy_provider_with_its_resolvers(provider: str) -> None:
    definition = REGISTRY[provider]
    factory, resolvers = EXPECTED[provider]
    assert definition.kind == "proxy"
    assert definition.factory is factory
    # Backstage's common resolvers, then the module's own (which win on a shared name).
    assert dict(definition.resolvers) == {**COMMON_RESOLVERS, **resolvers}
    assert definition.start_params == ()
