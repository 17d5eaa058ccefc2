"""The real app with static clients and refresh tokens on an in-memory SQLite database;
a fake clock; a user signed in through the guest provider approves."""

from __future__ import annotations

import base64
import copy
import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from connexion import AsyncApp
from schemathesis import checks

from app.config.settings import read_settings
from app.identity.catalog import Catalog, CatalogUser, InMemoryCatalog
from app.providers.registry import REGISTRY
from app.server.application import create_app
from app.server.wiring import Dependencies
from tests.fakes.app_factory import APP_BASE_URL, BACKEND_BASE_URL, JarlessClient, make_client
from tests.fakes.clock import FakeClock

PUBLIC = "cli"
CONFIDENTIAL = "server-app"
SECRET = "a-long-confidential-client-secret"
CALLBACK = "http://127.0.0.1:8055/callback"
SERVICE_TOKEN = "service-token-0123456789"
GUEST = "user:development/guest"

CONFIG: dict[str, Any] = {
    "app": {"baseUrl": APP_BASE_URL},
    "backend": {
        "baseUrl": "http://localhost:7007",
        "auth": {
            "externalAccess": [
                {"type": "static", "options": {"token": SERVICE_TOKEN, "subject": "admin-cli"}}
            ]
        },
    },
    "auth": {
        "session": {"secret": "authz-tests-session-secret"},
        "providers": {"guest": {}},
        "staticClients": [
            {"clientId": PUBLIC, "clientName": "Backstage CLI", "redirectUris": [CALLBACK]},
            {
                "clientId": CONFIDENTIAL,
                "clientSecret": SECRET,
                "redirectUris": ["https://app.example.com/cb"],
            },
        ],
        "experimentalRefreshToken": {"enabled": True},
    },
}


def config(**auth: Any) -> dict[str, Any]:
    out = copy.deepcopy(CONFIG)
    out["auth"].update(auth)
    return out


def build(raw: dict[str, Any], clock: FakeClock, catalog: Catalog | None = None) -> AsyncApp:
    return create_app(
        read_settings(raw),
        development=True,
        deps=Dependencies(
            clock=clock,
            providers=REGISTRY,
            catalog=catalog or InMemoryCatalog([CatalogUser(ref=GUEST)]),
        ),
        validate_responses=True,
    )


@dataclass
class World:
    clock: FakeClock
    client: JarlessClient


@pytest.fixture
def world() -> Iterator[World]:
    clock = FakeClock()
    with make_client(build(config(), clock)) as client:
        yield World(clock, client)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def user_token(client: JarlessClient) -> str:
    response = client.get("/api/auth/guest/refresh")
    assert response.status_code == 200, response.text
    return str(response.json()["backstageIdentity"]["token"])


def start(
    client: JarlessClient,
    *,
    client_id: str = PUBLIC,
    redirect_uri: str = CALLBACK,
    scope: str = "openid offline_access",
    challenge: str | None = None,
    state: str = "st",
) -> str:
    """A new consent session's id."""
    params = {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": scope,
        "state": state,
        "code_challenge": challenge or pkce()[1],
        "code_challenge_method": "S256",
    }
    response = client.get("/api/auth/v1/authorize", params=params)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(f"{APP_BASE_URL}/oauth2/authorize/")
    return location.rsplit("/", 1)[1]


def approve(client: JarlessClient, session_id: str) -> dict[str, list[str]]:
    response = client.post(
        f"/api/auth/v1/sessions/{session_id}/approve",
        headers={"Authorization": f"Bearer {user_token(client)}"},
    )
    assert response.status_code == 200, response.text
    return parse_qs(urlsplit(response.json()["redirectUrl"]).query)


def code_grant(client: JarlessClient, **overrides: Any) -> dict[str, Any]:
    """authorize, approve, exchange: the token response's JSON (public client)."""
    verifier, challenge = pkce()
    code = approve(client, start(client, challenge=challenge))["code"][0]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
        "client_id": PUBLIC,
        **overrides,
    }
    response = client.post("/api/auth/v1/token", data=data)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def call(case: Any, client: JarlessClient, base: str) -> None:
    """One schemathesis case through the app: never a 5xx, and the answer matches the spec.

    The spec lets any string through on purpose: Backstage's router validates and answers
    invalid_request (an OAuth body), which connexion's validation would not; so positive
    data acceptance is not checked.
    """
    kwargs = case.as_transport_kwargs(base_url=f"{BACKEND_BASE_URL}{base}")
    request: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "params": kwargs.get("params"),
        "headers": dict(kwargs.get("headers") or {}),
    }
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    data = kwargs.get("data")
    if isinstance(data, bytes | str):
        request["content"] = data
    elif data is not None:
        request["data"] = data
    response = client.request(**request)
    assert response.status_code < 500, response.text
    case.validate_response(
        response, headers=request["headers"], excluded_checks=[checks.positive_data_acceptance]
    )
