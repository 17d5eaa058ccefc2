"""pytest fixtures around the real OpenID provider (tests/op).

Wire them from a conftest with e.g.::

    from tests.support.fixtures import oidc_client_config, openid_provider  # noqa: F401

(or ``pytest_plugins = ["tests.support.fixtures"]`` in the root conftest).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from .oidc_provider import OpenIDProvider, backstage_client, start_openid_provider

#: Backstage's default callback for a provider called "oidc" on the default backend port.
DEFAULT_REDIRECT_URI = "http://localhost:7007/api/auth/oidc/handler/frame"


@pytest.fixture(scope="session")
def oidc_client_config() -> dict[str, Any]:
    """The confidential client registered at the session-scoped provider.

    Override this fixture (same name, session scope) to register a different client.
    """
    return backstage_client(
        DEFAULT_REDIRECT_URI, post_logout_redirect_uris=["http://localhost:3000/"]
    )


@pytest.fixture(scope="session")
def openid_provider(oidc_client_config: dict[str, Any]) -> Iterator[OpenIDProvider]:
    """A real oidc-provider process shared by the whole test session (rotation on)."""
    provider = start_openid_provider(clients=[oidc_client_config])
    try:
        yield provider
    finally:
        provider.stop()
