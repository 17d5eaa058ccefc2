"""The real catalog goes down, then comes back: known users keep signing in from the
lookups' cache (a brief outage must not lock everyone out), a user never looked up gets
Backstage's error, a refresh grant is refused without being lost, and works again once
the catalog answers. Its own split set-up: the test stops the main backend."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx2
import pytest

from app.identity.remote_catalog import DEFAULT_CACHE_TTL_SECONDS
from tests.backstage_backend.support import (
    ALICE,
    TEAM,
    Split,
    cli_refresh_token,
    guest_token,
    oidc_sign_in,
    refresh,
    split_set_up,
    wait_for_catalog,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Split]:
    with split_set_up(tmp_path_factory.mktemp("outage")) as split:
        yield split


def test_a_catalog_outage_and_its_end(outage: Split) -> None:
    signed_in = oidc_sign_in(outage, "alice")["response"]["backstageIdentity"]
    assert signed_in["identity"]["ownershipEntityRefs"] == [ALICE, TEAM]
    grant = cli_refresh_token(outage, guest_token(outage))

    outage.main.stop()
    with pytest.raises(httpx2.HTTPError):
        httpx2.get(f"{outage.main.base_url}/.backstage/health/v1/liveness", timeout=2)
    # Past the lookups' cache: each sign-in now asks the catalog, which does not answer.
    time.sleep(DEFAULT_CACHE_TTL_SECONDS + 1)

    again = oidc_sign_in(outage, "alice")["response"]["backstageIdentity"]
    assert again["identity"] == signed_in["identity"]
    assert "serving cached users" in outage.ours.output
    assert guest_token(outage)

    # Never looked up: no cached answer to fall back on.
    failed = oidc_sign_in(outage, "bob")
    assert failed["type"] == "authorization_response"
    assert failed["error"]["name"] == "ServiceUnavailableError", failed
    assert "catalog" in failed["error"]["message"]

    # The refresh tokens' presence check needs a live answer: refused, as Backstage does,
    # and the grant is left as it was.
    refused = refresh(outage, grant)
    assert refused.status_code in (400, 401), refused.text
    assert refused.json() == {
        "error": "invalid_grant",
        "error_description": "Unable to validate user existence",
    }

    outage.main.launch()
    outage.main.wait_ready(120)
    wait_for_catalog(outage.main)
    back = refresh(outage, grant)
    assert back.status_code == 200, back.text
    assert refresh(outage, back.json()["refresh_token"]).status_code == 200
    # bob signs in now that the catalog answers.
    bob = oidc_sign_in(outage, "bob")["response"]["backstageIdentity"]
    assert bob["identity"]["userEntityRef"] == "user:default/bob"
