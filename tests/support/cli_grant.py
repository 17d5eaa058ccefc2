"""A CLI client's authorization-code grant against a running auth API, over plain HTTP.

Backstage's own flow for a CLI client: authorize with PKCE (S256), approve the consent
session as the signed-in user, exchange the code. Tests that want a real OAuth client
library instead use Authlib (tests/authz/test_end_to_end.py).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2


def cli_grant(
    auth_api: str,
    user_token: str,
    client_id: str,
    redirect_uri: str,
    exchange_at: str | None = None,
) -> dict[str, Any]:
    """The token response of a grant to ``client_id`` approved with ``user_token``.

    ``auth_api`` is the auth plugin's base URL (``.../api/auth``); the code is exchanged at
    ``exchange_at`` when given (a code issued by one server, redeemed at another).
    """
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = {
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": "openid offline_access",
        "state": "st",
        "code_challenge": challenge.rstrip(b"=").decode(),
        "code_challenge_method": "S256",
    }
    authorize = httpx2.get(f"{auth_api}/v1/authorize", params=params, timeout=30)
    assert authorize.status_code == 302, authorize.text
    session_id = authorize.headers["location"].rsplit("/", 1)[1]
    approved = httpx2.post(
        f"{auth_api}/v1/sessions/{session_id}/approve",
        headers={"Authorization": f"Bearer {user_token}"},
        timeout=30,
    )
    assert approved.status_code == 200, approved.text
    code = parse_qs(urlsplit(approved.json()["redirectUrl"]).query)["code"][0]
    token = httpx2.post(
        f"{exchange_at or auth_api}/v1/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": client_id,
        },
        timeout=30,
    )
    assert token.status_code == 200, token.text
    body: dict[str, Any] = token.json()
    return body
