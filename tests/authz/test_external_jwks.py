"""``backend.auth.externalAccess`` entries of type ``jwks``: service callers with JWTs
signed by keys a real JWKS endpoint serves over loopback HTTP, accepted and refused as
Backstage's ``jwksTokenHandler`` does, with a bounded refetch on unknown ``kid``s."""

from __future__ import annotations

import copy
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from app.authz.callers import ServiceCallers
from app.config.external_access import read_external_access
from app.config.validation import ConfigError
from app.providers.remote_keys import KEY_REFETCH_INTERVAL_SECONDS
from tests.authz.conftest import CONFIG, build, code_grant
from tests.fakes.app_factory import JarlessClient, make_client
from tests.fakes.clock import FakeClock

ISSUER = "https://ci.example.com"
AUDIENCE = "backstage-auth"
REVOKE = "/api/auth/v1/offline-sessions/revoke"
BODY = {"userEntityRef": "development/guest"}


class Jwks:
    """A JWKS endpoint on 127.0.0.1; ``status`` other than 200 answers that status."""

    def __init__(self) -> None:
        self.signing = ECKey.generate_key("P-256", parameters={"kid": "k1"})
        self.p384 = ECKey.generate_key("P-384", parameters={"kid": "k384"})
        self.rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa"})
        self.fetches = 0
        self.status = 200
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                jwks.fetches += 1
                keys = [k.as_dict(private=False) for k in (jwks.signing, jwks.p384, jwks.rsa)]
                body = json.dumps({"keys": keys}).encode()
                self.send_response(jwks.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/.well-known/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    server = Jwks()
    yield server
    server.stop()


def entry(url: str, **options: Any) -> dict[str, Any]:
    defaults = {"issuer": ISSUER, "audience": AUDIENCE, "algorithm": "ES256"}
    return {"type": "jwks", "options": {"url": url, **defaults, **options}}


def with_entries(*entries: dict[str, Any]) -> dict[str, Any]:
    raw = copy.deepcopy(CONFIG)
    raw["backend"]["auth"]["externalAccess"] = list(entries)
    return raw


def sign(key: ECKey | RSAKey, now: float, alg: str = "ES256", **claims: Any) -> str:
    kid = claims.pop("kid", key.kid)
    header = {"alg": alg} if kid is None else {"alg": alg, "kid": kid}
    base = {"iss": ISSUER, "aud": AUDIENCE, "sub": "ci-bot", "iat": int(now)}
    base["exp"] = int(now) + 300
    body = {k: v for k, v in {**base, **claims}.items() if v is not None}
    return jwt.encode(header, body, key, algorithms=[alg])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(jwks: Jwks, clock: FakeClock) -> Iterator[JarlessClient]:
    raw = with_entries(entry(jwks.url, subjectPrefix="ci"))
    with make_client(build(raw, clock)) as client:
        yield client


def test_a_valid_token_is_a_service_caller_named_after_its_subject(
    client: JarlessClient, jwks: Jwks, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    code_grant(client)
    with caplog.at_level(logging.INFO, logger="app.audit"):
        ok = client.post(REVOKE, json=BODY, headers=bearer(sign(jwks.signing, clock.now())))
    assert (ok.status_code, ok.json()) == (200, {"revokedCount": 1})
    events = [r for r in caplog.records if r.message == "offline-sessions-revoke"]
    assert [getattr(r, "caller", None) for r in events] == ["external:ci:ci-bot"]


def _illegal(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == {
        "error": {"name": "AuthenticationError", "message": "Illegal token"},
        "request": {"method": "POST", "url": "/v1/offline-sessions/revoke"},
        "response": {"statusCode": 401},
    }


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "https://other.example.com"},
        {"iss": None},
        {"aud": "catalog"},
        {"aud": None},
        {"sub": None},
        {"exp": "expired"},
        {"nbf": "later"},
        {"kid": "unknown"},
    ],
    ids=["issuer", "no-issuer", "audience", "no-audience", "no-sub", "expired", "nbf", "kid"],
)
def test_a_token_failing_a_check_is_an_illegal_token(
    client: JarlessClient, jwks: Jwks, clock: FakeClock, claims: dict[str, Any]
) -> None:
    now = clock.now()
    if claims.get("exp") == "expired":
        claims["exp"] = int(now)
    if claims.get("nbf") == "later":
        claims["nbf"] = int(now) + 60
    _illegal(client.post(REVOKE, json=BODY, headers=bearer(sign(jwks.signing, now, **claims))))


def test_an_issue_time_a_little_ahead_is_accepted_as_jose_does(
    client: JarlessClient, jwks: Jwks, clock: FakeClock
) -> None:
    token = sign(jwks.signing, clock.now(), iat=int(clock.now()) + 30)
    assert client.post(REVOKE, json=BODY, headers=bearer(token)).status_code == 200
    _illegal(
        client.post(REVOKE, json=BODY, headers=bearer(sign(jwks.signing, clock.now(), iat="x")))
    )


def test_a_token_without_kid_is_tried_with_each_key_of_the_set(
    jwks: Jwks, clock: FakeClock
) -> None:
    raw = with_entries(entry(jwks.url, algorithm=["ES256", "ES384", "RS256"]))
    with make_client(build(raw, clock)) as client:
        for key, alg in ((jwks.signing, "ES256"), (jwks.p384, "ES384"), (jwks.rsa, "RS256")):
            token = sign(key, clock.now(), alg=alg, kid=None)
            assert client.post(REVOKE, json=BODY, headers=bearer(token)).status_code == 200
        stranger = sign(ECKey.generate_key("P-256"), clock.now(), kid=None)
        _illegal(client.post(REVOKE, json=BODY, headers=bearer(stranger)))
    assert jwks.fetches == 1


def test_an_algorithm_not_configured_is_an_illegal_token(
    client: JarlessClient, jwks: Jwks, clock: FakeClock
) -> None:
    token = sign(jwks.p384, clock.now(), alg="ES384")
    _illegal(client.post(REVOKE, json=BODY, headers=bearer(token)))
    # Signed by another key under the configured key's kid.
    forged = sign(ECKey.generate_key("P-256"), clock.now(), kid="k1")
    _illegal(client.post(REVOKE, json=BODY, headers=bearer(forged)))


def test_without_configured_checks_any_key_of_the_set_and_no_audience_pass(
    jwks: Jwks, clock: FakeClock
) -> None:
    raw = with_entries({"type": "jwks", "options": {"url": jwks.url}})
    with make_client(build(raw, clock)) as client:
        token = sign(jwks.rsa, clock.now(), alg="RS256", aud=None, iss=None)
        ok = client.post(REVOKE, json=BODY, headers=bearer(token))
    assert (ok.status_code, ok.json()) == (200, {"revokedCount": 0})


@pytest.mark.parametrize("status", [500, 404, 0])
def test_keys_that_cannot_be_fetched_make_an_illegal_token_not_a_500(
    jwks: Jwks, clock: FakeClock, status: int
) -> None:
    if status:
        jwks.status = status
    else:
        jwks.stop()
    raw = with_entries(entry(jwks.url))
    with make_client(build(raw, clock)) as client:
        _illegal(client.post(REVOKE, json=BODY, headers=bearer(sign(jwks.signing, clock.now()))))


def test_unknown_kids_refetch_the_keys_at_a_bounded_rate(
    client: JarlessClient, jwks: Jwks, clock: FakeClock
) -> None:
    good = sign(jwks.signing, clock.now())
    assert client.post(REVOKE, json=BODY, headers=bearer(good)).status_code == 200
    assert jwks.fetches == 1
    # At most one fetch per interval: the first load counts.
    for i in range(20):
        token = sign(jwks.signing, clock.now(), kid=f"made-up-{i}")
        _illegal(client.post(REVOKE, json=BODY, headers=bearer(token)))
    assert jwks.fetches == 1
    clock.advance(KEY_REFETCH_INTERVAL_SECONDS)
    for i in range(5):
        token = sign(jwks.signing, clock.now(), kid=f"again-{i}")
        _illegal(client.post(REVOKE, json=BODY, headers=bearer(token)))
    assert jwks.fetches == 2
    # Known keys are answered from the cache meanwhile.
    assert client.post(REVOKE, json=BODY, headers=bearer(good)).status_code == 200
    assert jwks.fetches == 2


def test_a_token_of_another_issuer_fetches_nothing(
    client: JarlessClient, jwks: Jwks, clock: FakeClock
) -> None:
    token = sign(jwks.signing, clock.now(), iss="https://elsewhere.example.com")
    _illegal(client.post(REVOKE, json=BODY, headers=bearer(token)))
    assert jwks.fetches == 0


def test_access_restricted_to_other_plugins_is_backstages_403(jwks: Jwks, clock: FakeClock) -> None:
    restricted = {**entry(jwks.url), "accessRestrictions": [{"plugin": "catalog"}]}
    with make_client(build(with_entries(restricted), clock)) as client:
        response = client.post(REVOKE, json=BODY, headers=bearer(sign(jwks.signing, clock.now())))
    assert response.status_code == 403
    assert response.json()["error"] == {
        "name": "NotAllowedError",
        "message": "This token's access is restricted to plugin(s) 'catalog'",
    }
    allowed = {**entry(jwks.url), "accessRestrictions": [{"plugin": "catalog"}, {"plugin": "auth"}]}
    with make_client(build(with_entries(allowed), clock)) as client:
        response = client.post(REVOKE, json=BODY, headers=bearer(sign(jwks.signing, clock.now())))
    assert response.status_code == 200


@pytest.mark.anyio
async def test_the_subject_prefix_is_optional(jwks: Jwks, clock: FakeClock) -> None:
    callers = ServiceCallers(
        read_external_access(
            {"auth": {"externalAccess": [entry(jwks.url), entry(jwks.url, subjectPrefix="ci")]}}
        ),
        clock,
    )
    try:
        assert await callers.subject(sign(jwks.signing, clock.now())) == "external:ci-bot"
        assert await callers.subject("not-a-jwt") is None
    finally:
        await callers.aclose()


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (
            {"type": "jwks", "options": {"url": "http://a b"}},
            "Illegal JWKS URL, must be a set of non-space characters",
        ),
        ({"type": "jwks", "options": {"url": "not a url"}}, "Illegal JWKS URL"),
        ({"type": "jwks", "options": {"url": "/relative"}}, "Invalid URL '/relative'"),
        ({"type": "jwks", "options": {}}, "options.url: must be a string"),
        (
            {
                "type": "static",
                "options": {"token": "0123456789", "subject": "s"},
                "accessRestrictions": [{"plugin": "x", "scope": "y"}],
            },
            "Invalid key 'scope' in 'accessRestrictions' config, expected one of "
            "'plugin', 'permission', 'permissionAttribute'",
        ),
        (
            {
                "type": "static",
                "options": {"token": "0123456789", "subject": "s"},
                "accessRestrictions": [{"plugin": "x"}, {"plugin": "x"}],
            },
            "Attempted to declare 'accessRestrictions' twice for plugin 'x', which is not "
            "permitted",
        ),
    ],
)
def test_config_errors_are_backstages(item: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=None) as raised:
        read_external_access({"auth": {"externalAccess": [item]}})
    assert message in str(raised.value)


def test_options_take_strings_lists_and_separated_values() -> None:
    (parsed,) = read_external_access(
        {
            "auth": {
                "externalAccess": [
                    entry("https://keys.example.com", issuer=["a, b", "b"], algorithm="ES256 RS256")
                ]
            }
        }
    )
    assert parsed.jwks is not None
    assert parsed.jwks.issuers == ("a", "b")
    assert parsed.jwks.algorithms == ("ES256", "RS256")
    assert parsed.jwks.audiences == (AUDIENCE,)
