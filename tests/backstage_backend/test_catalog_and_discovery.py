"""Beside a real Backstage backend, on one shared app-config.yaml: sign-in resolves users
through the REAL catalog with our plugin tokens (which the catalog verifies against our
/.backstage/auth/v1/jwks.json), the refresh tokens' catalog presence check asks it too,
and our issuer and callback URLs follow discovery, not backend.baseUrl (the main
backend)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import httpx2
import pytest
import yaml

from tests.backstage_backend.support import (
    ALICE,
    TEAM,
    USERS,
    WATCH_TOKEN,
    Split,
    catalog_entity,
    cli_refresh_token,
    guest_token,
    oidc_sign_in,
    refresh,
)
from tests.support.server import ROOT

pytestmark = pytest.mark.integration


def test_sign_in_resolves_the_user_through_the_real_catalog(split: Split) -> None:
    message = oidc_sign_in(split, "alice")
    identity = message["response"]["backstageIdentity"]["identity"]
    # The group is only in the catalog's file, which our server never reads.
    assert identity == {
        "type": "user",
        "userEntityRef": ALICE,
        "ownershipEntityRefs": [ALICE, TEAM],
    }
    # The catalog answered our lookups: it had verified our plugin tokens with the keys
    # it fetched from us.
    lookups = split.main.requests_to("/api/catalog/entities/by-query")
    assert lookups and all('" 200 ' in line for line in lookups), lookups
    assert 'GET /api/auth/.backstage/auth/v1/jwks.json HTTP/1.1\\" 200' in split.ours.output


def test_the_guest_resolves_through_the_real_catalog_too(split: Split) -> None:
    token = guest_token(split)
    info = httpx2.get(
        f"{split.auth_api}/v1/userinfo", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert info.json()["claims"] == {"sub": ALICE, "ent": [ALICE, TEAM]}


def test_the_refresh_presence_check_asks_the_real_catalog(split: Split) -> None:
    alice = cli_refresh_token(split, guest_token(split))
    refreshed = refresh(split, alice)
    assert refreshed.status_code == 200, refreshed.text

    # Someone the catalog does not hold signs in (the resolver allows it) and gets a grant.
    ghost = oidc_sign_in(split, "ghost")["response"]["backstageIdentity"]
    assert ghost["identity"]["userEntityRef"] == "user:default/ghost"
    grant = cli_refresh_token(split, ghost["token"])
    refused = refresh(split, grant)
    assert refused.status_code in (400, 401), refused.text
    assert refused.json()["error"] == "invalid_grant"
    # Never again: the grant is gone.
    assert refresh(split, grant).status_code in (400, 401)


def test_a_user_removed_from_the_catalog_cannot_refresh(split: Split) -> None:
    bob = oidc_sign_in(split, "bob")["response"]["backstageIdentity"]
    assert bob["identity"]["ownershipEntityRefs"] == ["user:default/bob"]
    grant = cli_refresh_token(split, bob["token"])
    refreshed = refresh(split, grant)
    assert refreshed.status_code == 200, refreshed.text
    grant = refreshed.json()["refresh_token"]

    # The operator removes bob: from the file, and the entity at once (otherwise the
    # catalog's orphan clean-up deletes it within half a minute).
    split.users_file.write_text(
        yaml.safe_dump_all([u for u in USERS if u["metadata"]["name"] != "bob"])
    )
    uid = catalog_entity(split.main, "user", "bob").json()["metadata"]["uid"]
    deleted = httpx2.delete(
        f"{split.main.base_url}/api/catalog/entities/by-uid/{uid}",
        headers={"Authorization": f"Bearer {WATCH_TOKEN}"},
        timeout=10,
    )
    assert deleted.status_code == 204, deleted.text
    assert catalog_entity(split.main, "user", "bob").status_code == 404
    # At once: the check asks the catalog live, not the sign-in lookups' cache.
    response = refresh(split, grant)
    assert response.status_code in (400, 401), response.text
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "User entity no longer exists in the catalog",
    }


def test_issuer_and_callback_urls_follow_discovery(split: Split) -> None:
    ours = split.auth_api
    assert split.config["backend"]["baseUrl"] == split.main.base_url
    metadata = httpx2.get(f"{ours}/.well-known/openid-configuration", timeout=30).json()
    assert metadata["issuer"] == ours
    assert metadata["token_endpoint"] == f"{ours}/v1/token"
    assert metadata["jwks_uri"] == f"{ours}/.well-known/jwks.json"
    with httpx2.Client(follow_redirects=False, timeout=30) as browser:
        start = browser.get(
            f"{ours}/oidc/start",
            params={"scope": "openid", "origin": "http://localhost:3000", "env": "development"},
        )
    assert start.status_code == 302
    location = httpx2.URL(start.headers["location"])
    assert location.params["redirect_uri"] == f"{ours}/oidc/handler/frame"

    # The main backend names us too, from the same discovery.endpoints.
    main = split.main.base_url
    resource = httpx2.get(
        f"{main}/.well-known/oauth-protected-resource/api/mcp-actions/v1", timeout=30
    ).json()
    assert resource["authorization_servers"] == [ours]
    assert resource["resource"] == f"{main}/api/mcp-actions/v1"
    # ... which it fetches from our internal URL.
    proxied = httpx2.get(f"{main}/.well-known/oauth-authorization-server", timeout=30).json()
    assert proxied["issuer"] == ours
    internal = split.ours.base_url.replace("localhost", "127.0.0.1")
    tokens = oidc_sign_in(split, "alice")["response"]["backstageIdentity"]["token"]
    claims = json.loads(base64.urlsafe_b64decode(tokens.split(".")[1] + "=="))
    assert claims["iss"] == ours and not ours.startswith(internal)


def test_check_config_says_the_catalog_is_the_real_one_found_through_discovery(
    split: Split,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", "check-config", "--config", str(split.config_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert (
        f"the Backstage catalog at {split.main.base_url.replace('localhost', '127.0.0.1')}" in said
    )
    assert "catalog.locations not read" in said
