"""The development identity provider in-process (Flask's test client): the protocol rules
that the end-to-end flow does not reach, and when it may run at all."""

from __future__ import annotations

import base64
import hashlib
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask.testing import FlaskClient

from app.config.settings import read_settings
from app.config.validation import ConfigError
from app.devidp import DevIdentityProvider, dev_idp_settings
from app.devidp.settings import DevClientConfig, DevIdpSettings, server_root, username_from

ISSUER = "http://localhost:7007/dev-idp"
CALLBACK = "http://localhost:7007/api/auth/oidc/handler/frame"
SAME_ORIGIN = {"Origin": "http://localhost:7007"}


@pytest.fixture
def idp() -> DevIdentityProvider:
    return DevIdentityProvider(
        DevIdpSettings(issuer=ISSUER, clients=(DevClientConfig("dev", "dev-secret", (CALLBACK,)),))
    )


@pytest.fixture
def client(idp: DevIdentityProvider) -> Iterator[FlaskClient]:
    with idp.app.test_client() as c:
        yield c


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _authorize_query(challenge: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": "dev",
        "redirect_uri": CALLBACK,
        "scope": "openid profile email offline_access",
        "state": "s1",
        "nonce": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


def _redirect_params(response: Any) -> dict[str, str]:
    assert response.status_code == 302, response.get_data(as_text=True)
    location = response.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _tokens(client: FlaskClient, user: str = "alice") -> dict[str, Any]:
    verifier, challenge = _pkce()
    query = _authorize_query(challenge)
    answer = client.post("/authorize", query_string=query, data={"user": user}, headers=SAME_ORIGIN)
    code = _redirect_params(answer)["code"]
    token = client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
        },
        auth=("dev", "dev-secret"),
    )
    assert token.status_code == 200, token.get_data(as_text=True)
    body: dict[str, Any] = token.get_json()
    return body


def _refresh(client: FlaskClient, refresh_token: str) -> Any:
    return client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=("dev", "dev-secret"),
    )


def test_pkce_s256_is_required(client: FlaskClient) -> None:
    _, challenge = _pkce()
    without = _authorize_query(challenge)
    del without["code_challenge"], without["code_challenge_method"]
    params = _redirect_params(client.get("/authorize", query_string=without))
    assert params["error"] == "invalid_request"
    plain = _authorize_query(challenge, code_challenge_method="plain")
    assert _redirect_params(client.get("/authorize", query_string=plain))["error"] == (
        "invalid_request"
    )


def test_a_wrong_code_verifier_fails_and_the_code_is_spent(client: FlaskClient) -> None:
    _, challenge = _pkce()
    answer = client.post(
        "/authorize",
        query_string=_authorize_query(challenge),
        data={"user": "bob"},
        headers=SAME_ORIGIN,
    )
    code = _redirect_params(answer)["code"]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": secrets.token_urlsafe(48),
    }
    first = client.post("/token", data=data, auth=("dev", "dev-secret"))
    assert first.get_json()["error"] == "invalid_grant"
    second = client.post("/token", data=data, auth=("dev", "dev-secret"))
    assert second.get_json()["error"] == "invalid_grant"


def test_refresh_tokens_rotate_and_a_replay_ends_the_sign_in(client: FlaskClient) -> None:
    tokens = _tokens(client)
    assert {"access_token", "refresh_token", "id_token"} <= set(tokens)
    rotated = _refresh(client, tokens["refresh_token"])
    assert rotated.status_code == 200
    new = rotated.get_json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert "id_token" in new
    # The old refresh token again: refused, and the whole family is revoked.
    assert _refresh(client, tokens["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert _refresh(client, new["refresh_token"]).get_json()["error"] == "invalid_grant"
    userinfo = client.get("/userinfo", headers={"Authorization": f"Bearer {new['access_token']}"})
    assert userinfo.status_code == 401


def test_revocation_ends_refresh_and_userinfo(client: FlaskClient) -> None:
    tokens = _tokens(client, "carol")
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    info = client.get("/userinfo", headers=bearer)
    assert info.get_json() == {
        "sub": "carol",
        "name": "Carol Chen",
        "preferred_username": "carol",
        "email": "carol@example.com",
        "email_verified": True,
    }
    revoked = client.post(
        "/revoke",
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        auth=("dev", "dev-secret"),
    )
    assert revoked.status_code == 200
    assert _refresh(client, tokens["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert client.get("/userinfo", headers=bearer).status_code == 401


def test_prompt_none_answers_login_required(client: FlaskClient) -> None:
    _, challenge = _pkce()
    query = _authorize_query(challenge, prompt="none")
    params = _redirect_params(client.get("/authorize", query_string=query))
    assert (params["error"], params["state"]) == ("login_required", "s1")


def test_unknown_clients_and_redirect_uris_get_a_page_not_a_redirect(
    client: FlaskClient,
) -> None:
    _, challenge = _pkce()
    for bad in ({"client_id": "nobody"}, {"redirect_uri": "http://evil.example/cb"}):
        response = client.get("/authorize", query_string=_authorize_query(challenge, **bad))
        assert response.status_code in (400, 401)
        assert "Location" not in response.headers
        assert "cannot be served" in response.get_data(as_text=True)


def test_a_cross_origin_login_post_is_refused(client: FlaskClient) -> None:
    _, challenge = _pkce()
    response = client.post(
        "/authorize",
        query_string=_authorize_query(challenge),
        data={"user": "alice"},
        headers={"Origin": "http://evil.example"},
    )
    assert response.status_code == 403


def test_an_empty_name_shows_the_form_again(client: FlaskClient) -> None:
    _, challenge = _pkce()
    response = client.post(
        "/authorize",
        query_string=_authorize_query(challenge),
        data={"name": "  !!  "},
        headers=SAME_ORIGIN,
    )
    assert response.status_code == 400
    assert "Pick a user or type a name." in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("typed", "username"),
    [("Dana Scully", "dana.scully"), ("  Élodie  ", "elodie"), ("x" * 80, "x" * 63), ("!!", None)],
)
def test_typed_names_become_entity_names(typed: str, username: str | None) -> None:
    assert username_from(typed) == username


# -- when it may run -------------------------------------------------------------------


def _settings(**overrides: Any) -> Any:
    raw: dict[str, Any] = {
        "app": {"baseUrl": "http://localhost:7007"},
        "backend": {"baseUrl": "http://localhost:7007", "listen": {"host": "127.0.0.1"}},
        "auth": {
            "devIdentityProvider": {"enabled": True},
            "providers": {
                "oidc": {
                    "development": {
                        "metadataUrl": f"{ISSUER}/.well-known/openid-configuration",
                        "clientId": "c1",
                        "clientSecret": "s1",
                    },
                    "other": {
                        "metadataUrl": "https://idp.example.com/.well-known/openid-configuration",
                        "clientId": "c2",
                        "clientSecret": "s2",
                    },
                }
            },
        },
    }
    for path, value in overrides.items():
        node = raw
        keys = path.split("__")
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return read_settings(raw)


def test_clients_register_themselves_from_the_providers_pointing_at_it() -> None:
    dev = dev_idp_settings(_settings(), development=True)
    assert dev is not None
    assert dev.issuer == ISSUER
    assert dev.clients == (DevClientConfig("c1", "s1", (CALLBACK,), "client_secret_basic"),)


def test_under_a_shared_config_it_lives_where_discovery_sends_auth() -> None:
    """backend.baseUrl is the main Backstage backend; discovery sends ``auth`` to us."""
    ours = "http://localhost:7008/api/{{pluginId}}"
    settings = _settings(
        backend__baseUrl="http://localhost:7007",
        discovery={"endpoints": [{"target": ours, "plugins": ["auth"]}]},
        auth__providers__oidc__development__metadataUrl=(
            "http://localhost:7008/dev-idp/.well-known/openid-configuration"
        ),
    )
    dev = dev_idp_settings(settings, development=True)
    assert dev is not None
    assert dev.issuer == "http://localhost:7008/dev-idp"
    callback = "http://localhost:7008/api/auth/oidc/handler/frame"
    assert dev.clients == (DevClientConfig("c1", "s1", (callback,), "client_secret_basic"),)


@pytest.mark.parametrize(
    ("auth_base", "root"),
    [
        ("http://localhost:7008/api/auth", "http://localhost:7008"),
        ("http://localhost:7008/gateway/api/auth", "http://localhost:7008/gateway"),
        ("http://localhost:7008/auth-service", "http://localhost:7008"),
    ],
)
def test_the_server_root_under_the_auth_url(auth_base: str, root: str) -> None:
    assert server_root(auth_base) == root


def test_disabled_is_none() -> None:
    settings = _settings(auth__devIdentityProvider={"enabled": False})
    assert dev_idp_settings(settings, development=True) is None


@pytest.mark.parametrize(
    ("overrides", "development", "message"),
    [
        ({}, False, "outside development mode"),
        ({"backend__listen": {"host": "0.0.0.0"}}, True, "listens on '0.0.0.0'"),
        ({"backend__listen": {}}, True, "listens on '0.0.0.0'"),
        ({"backend__listen": {"host": "192.168.1.5"}}, True, "listens on '192.168.1.5'"),
        (
            {"backend__baseUrl": "http://auth.example.com"},
            True,
            "external URL 'http://auth.example.com/api/auth' (backend.baseUrl, or "
            "discovery.endpoints for auth) is not a loopback address",
        ),
        (
            {
                "discovery": {
                    "endpoints": [
                        {"target": "https://auth.example.com/api/{{pluginId}}", "plugins": ["auth"]}
                    ]
                }
            },
            True,
            "external URL 'https://auth.example.com/api/auth' (backend.baseUrl",
        ),
    ],
)
def test_it_refuses_to_start(overrides: dict[str, Any], development: bool, message: str) -> None:
    with pytest.raises(ConfigError, match="auth.devIdentityProvider.enabled") as info:
        dev_idp_settings(_settings(**overrides), development=development)
    assert message in str(info.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"])
def test_loopback_hosts_are_accepted(host: str) -> None:
    settings = _settings(backend__listen={"host": host})
    assert dev_idp_settings(settings, development=True) is not None


def test_configured_users_replace_the_demo_users() -> None:
    users = [{"username": "dana", "name": "Dana Scully"}, {"username": "fox"}]
    settings = _settings(auth__devIdentityProvider={"enabled": True, "users": users})
    dev = dev_idp_settings(settings, development=True)
    assert dev is not None
    assert [(u.username, u.name, u.email) for u in dev.users] == [
        ("dana", "Dana Scully", "dana@example.com"),
        ("fox", "fox", "fox@example.com"),
    ]
    bad = _settings(auth__devIdentityProvider={"enabled": True, "users": [{"username": "A B"}]})
    with pytest.raises(ConfigError, match=r"auth.devIdentityProvider.users.0.username"):
        dev_idp_settings(bad, development=True)


_LOADED = """
import sys
import warnings

warnings.filterwarnings("ignore")
from app.server.application import create_app
from app.config.settings import read_settings

auth = {"providers": {"guest": {}}}
if sys.argv[1] == "on":
    auth["devIdentityProvider"] = {"enabled": True}
settings = read_settings(
    {
        "app": {"baseUrl": "http://localhost:3000"},
        "backend": {"baseUrl": "http://localhost:7007", "listen": {"host": "127.0.0.1"}},
        "auth": auth,
    }
)
create_app(settings, development=True)
print(sorted(m for m in sys.modules if m in ("app.devidp.mount", "app.devidp.server")))
"""


@pytest.mark.parametrize(
    ("enabled", "loaded"),
    [("off", "[]"), ("on", "['app.devidp.mount', 'app.devidp.server']")],
)
def test_its_modules_are_loaded_only_when_it_is_enabled(enabled: str, loaded: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _LOADED, enabled],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == loaded
