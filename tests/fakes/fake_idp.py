"""A fake OpenID Connect / OAuth 2.0 identity provider, served through ``httpx2.MockTransport``.

``FakeIdP`` is a callable ``httpx2.Request -> httpx2.Response``: pass
``httpx2.MockTransport(fake)`` as a provider's transport and every HTTP call the provider
makes lands here. Routing is by path only, so a provider with hard-coded hosts can still
be pointed at the fake.

What it serves (paths relative to any host, issuer ``FakeIdP.issuer``):

- ``GET  /.well-known/openid-configuration``  discovery (``discovery_overrides`` patches it)
- ``GET  /jwks``                               the public signing keys (``rotate_key``)
- ``GET  /authorize``                          never fetched; ``authorize(url)`` plays the
                                               browser + login and returns a code
- ``POST /token``                              authorization_code (PKCE S256 checked) and
                                               refresh_token (optional rotation)
- ``GET  /userinfo``                           the user's claims for a bearer access token
- ``POST /revoke``                             RFC 7009 revocation

Every request is recorded in ``requests`` (method, path, query, form, headers). Failure
knobs:

- ``fail(endpoint, mode, times=None)``: ``"5xx"`` (503), ``"garbage"`` (200, not JSON),
  ``"timeout"`` (raises ``httpx2.ReadTimeout``), ``"network"`` (raises
  ``httpx2.ConnectError``), ``"invalid_grant"`` / any other OAuth error code (400 JSON
  error body); ``times`` limits how many requests fail (``None``: all).
- ID tokens: ``id_token_claims`` overrides claims (``DELETE`` removes one),
  ``id_token_header`` overrides header members, ``id_token_signing`` picks
  ``"rs256"`` (default, the current JWKS key), ``"none"``, ``"hs256-client-secret"`` or
  ``"foreign-key"`` (an RSA key that is not in the JWKS) or ``"foreign-ec-key"`` (an
  ES256 key that is not in the JWKS, small enough that its JWK fits in a header);
  ``embed_foreign_jwk`` puts the foreign key's public JWK in the header.
- ``userinfo_claims`` overrides userinfo members (``DELETE`` removes one).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwk import ECKey, RSAKey

from tests.fakes.clock import FakeClock

DEFAULT_ISSUER = "https://idp.example.test"
DEFAULT_CLIENT_ID = "backstage-client"
# Long enough that HS256 keyed with it is a well-formed (if forbidden) signature.
DEFAULT_CLIENT_SECRET = "fake-client-secret-0123456789abcdefghijklmnop"

DISCOVERY_PATH = "/.well-known/openid-configuration"
ENDPOINT_PATHS: Mapping[str, str] = {
    "discovery": DISCOVERY_PATH,
    "jwks": "/jwks",
    "authorize": "/authorize",
    "token": "/token",
    "userinfo": "/userinfo",
    "revocation": "/revoke",
    "end_session": "/logout",
}

FailureMode = str  # "5xx" | "garbage" | "timeout" | "network" | an OAuth error code
IdTokenSigning = Literal["rs256", "none", "hs256-client-secret", "foreign-key", "foreign-ec-key"]


class _Delete:
    def __repr__(self) -> str:
        return "DELETE"


DELETE: Any = _Delete()
"""Use as an override value to remove a member (claim, header, discovery field)."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def s256(verifier: str) -> str:
    return b64url(hashlib.sha256(verifier.encode()).digest())


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _apply(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if value is DELETE:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def sign_rs256(header: Mapping[str, Any], claims: Mapping[str, Any], key: RSAKey) -> str:
    """A compact JWS signed by hand, so tests can put anything in the header."""
    signing_input = f"{b64url(_json_bytes(header))}.{b64url(_json_bytes(claims))}".encode()
    private = key.private_key
    assert private is not None
    signature = private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode()}.{b64url(signature)}"


def sign_es256(header: Mapping[str, Any], claims: Mapping[str, Any], key: ECKey) -> str:
    signing_input = f"{b64url(_json_bytes(header))}.{b64url(_json_bytes(claims))}".encode()
    private = key.private_key
    assert private is not None
    r, s = decode_dss_signature(private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return f"{signing_input.decode()}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def sign_hs256(header: Mapping[str, Any], claims: Mapping[str, Any], secret: str) -> str:
    signing_input = f"{b64url(_json_bytes(header))}.{b64url(_json_bytes(claims))}".encode()
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{signing_input.decode()}.{b64url(signature)}"


def unsigned(header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    return f"{b64url(_json_bytes(header))}.{b64url(_json_bytes(claims))}."


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    url: str
    query: dict[str, str]
    form: dict[str, str]
    # Lower-case names.
    headers: dict[str, str]

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        """(client_id, client_secret) from an ``Authorization: Basic`` header, if any."""
        value = self.headers.get("authorization", "")
        if not value.lower().startswith("basic "):
            return None
        decoded = base64.b64decode(value[6:]).decode()
        user, _, password = decoded.partition(":")
        # RFC 6749 2.3.1: both parts are form-urlencoded before base64.
        return unquote(user.replace("+", " ")), unquote(password.replace("+", " "))

    @property
    def bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        return value[7:] if value.lower().startswith("bearer ") else None


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str | None
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    used: bool = False


@dataclass
class _Failure:
    mode: FailureMode
    remaining: int | None


@dataclass
class FakeIdP:
    """See the module docstring. Construct, then ``httpx2.MockTransport(fake)``."""

    clock: FakeClock = field(default_factory=FakeClock)
    issuer: str = DEFAULT_ISSUER
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    kid: str = "fake-key-1"
    subject: str = "user-123"
    # The client authentication the client is registered with; None accepts basic and post.
    token_endpoint_auth_method: str | None = None
    # Refresh: issue a new refresh token and invalidate the old one.
    rotate_refresh_tokens: bool = False
    id_token_on_refresh: bool = True
    access_token_lifetime: int = 3600
    id_token_lifetime: int = 3600
    token_scope: str | None = None  # the "scope" in token responses; None echoes the request
    discovery_overrides: dict[str, Any] = field(default_factory=dict)
    id_token_claims: dict[str, Any] = field(default_factory=dict)
    id_token_header: dict[str, Any] = field(default_factory=dict)
    id_token_signing: IdTokenSigning = "rs256"
    embed_foreign_jwk: bool = False
    userinfo_claims: dict[str, Any] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._keys: list[RSAKey] = [self._generate(self.kid)]
        self._foreign_key = self._generate("foreign-key")
        self._grants: dict[str, _Grant] = {}
        self._access_tokens: dict[str, str] = {}  # access token -> scope
        self._refresh_tokens: dict[str, str] = {}  # active refresh token -> scope
        self._spent_refresh_tokens: set[str] = set()
        self._counter = itertools.count(1)
        self._failures: dict[str, _Failure] = {}
        self.revoked: list[str] = []
        self.last_authorize: dict[str, str] = {}

    # -- knobs -----------------------------------------------------------------------

    def fail(self, endpoint: str, mode: FailureMode, *, times: int | None = None) -> None:
        if endpoint not in ENDPOINT_PATHS:
            raise ValueError(f"unknown endpoint {endpoint!r}; one of {sorted(ENDPOINT_PATHS)}")
        self._failures[endpoint] = _Failure(mode, times)

    def heal(self, endpoint: str | None = None) -> None:
        if endpoint is None:
            self._failures.clear()
        else:
            self._failures.pop(endpoint, None)

    def rotate_key(self, kid: str, *, keep_old: bool = False) -> None:
        """A new signing key; the JWKS serves it (and the old ones with ``keep_old``)."""
        new = self._generate(kid)
        self._keys = [new, *self._keys] if keep_old else [new]
        self.kid = kid

    @property
    def signing_key(self) -> RSAKey:
        return self._keys[0]

    # -- URLs ------------------------------------------------------------------------

    def url(self, endpoint: str) -> str:
        return self.issuer + ENDPOINT_PATHS[endpoint]

    @property
    def metadata_url(self) -> str:
        return self.url("discovery")

    def discovery_document(self) -> dict[str, Any]:
        doc = {
            "issuer": self.issuer,
            "authorization_endpoint": self.url("authorize"),
            "token_endpoint": self.url("token"),
            "userinfo_endpoint": self.url("userinfo"),
            "jwks_uri": self.url("jwks"),
            "revocation_endpoint": self.url("revocation"),
            "end_session_endpoint": self.url("end_session"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }
        return _apply(doc, self.discovery_overrides)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for key in self._keys:
            jwk = key.as_dict(private=False)
            jwk.update({"use": "sig", "alg": "RS256"})
            keys.append(jwk)
        return {"keys": keys}

    # -- the browser side --------------------------------------------------------------

    def authorize(self, url: str) -> str:
        """Play the user's browser at the authorize URL; return the authorization code."""
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.last_authorize = query
        if query.get("client_id") != self.client_id:
            raise AssertionError(f"authorize: unexpected client_id {query.get('client_id')!r}")
        if query.get("response_type") != "code":
            raise AssertionError(f"authorize: response_type {query.get('response_type')!r}")
        code = f"code-{next(self._counter)}"
        self._grants[code] = _Grant(
            client_id=query["client_id"],
            redirect_uri=query.get("redirect_uri"),
            scope=query.get("scope", ""),
            nonce=query.get("nonce"),
            code_challenge=query.get("code_challenge"),
            code_challenge_method=query.get("code_challenge_method"),
        )
        return code

    # -- tokens ------------------------------------------------------------------------

    def id_token_claim_set(self, *, nonce: str | None) -> dict[str, Any]:
        now = int(self.clock.now())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.subject,
            "aud": self.client_id,
            "exp": now + self.id_token_lifetime,
            "iat": now,
            "auth_time": now,
            "email": "jane.doe@example.com",
            "name": "Jane Doe",
        }
        if nonce is not None:
            claims["nonce"] = nonce
        return _apply(claims, self.id_token_claims)

    def make_id_token(self, *, nonce: str | None) -> str:
        claims = self.id_token_claim_set(nonce=nonce)
        if self.id_token_signing == "none":
            return unsigned(_apply({"alg": "none", "typ": "JWT"}, self.id_token_header), claims)
        if self.id_token_signing == "hs256-client-secret":
            hs_header = _apply({"alg": "HS256", "typ": "JWT"}, self.id_token_header)
            return sign_hs256(hs_header, claims, self.client_secret)
        if self.id_token_signing == "foreign-ec-key":
            ec_key = _ec_key()
            header: dict[str, Any] = {"alg": "ES256", "typ": "JWT", "kid": "foreign-ec-key"}
            if self.embed_foreign_jwk:
                header["jwk"] = ec_key.as_dict(private=False)
            return sign_es256(_apply(header, self.id_token_header), claims, ec_key)
        key = self._foreign_key if self.id_token_signing == "foreign-key" else self.signing_key
        header = {"alg": "RS256", "typ": "JWT", "kid": key.kid}
        if self.embed_foreign_jwk:
            header["jwk"] = self._foreign_key.as_dict(private=False)
        return sign_rs256(_apply(header, self.id_token_header), claims, key)

    def userinfo_document(self) -> dict[str, Any]:
        doc = {
            "sub": self.subject,
            "email": "jane.doe@example.com",
            "email_verified": True,
            "name": "Jane Doe",
            "picture": "https://idp.example.test/jane.png",
            "preferred_username": "jane",
        }
        return _apply(doc, self.userinfo_claims)

    def issue_refresh_token(self, scope: str = "openid") -> str:
        """A refresh token the token endpoint accepts, without a prior sign-in."""
        token = f"rt-{next(self._counter)}"
        self._refresh_tokens[token] = scope
        return token

    # -- recording helpers ---------------------------------------------------------------

    def requests_to(self, endpoint: str) -> list[RecordedRequest]:
        path = ENDPOINT_PATHS[endpoint]
        return [r for r in self.requests if r.path == path]

    def last_request_to(self, endpoint: str) -> RecordedRequest:
        found = self.requests_to(endpoint)
        if not found:
            raise AssertionError(f"no request to {endpoint}")
        return found[-1]

    # -- the transport -------------------------------------------------------------------

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        body = request.content.decode() if request.content else ""
        content_type = request.headers.get("content-type", "")
        form = (
            dict(parse_qsl(body, keep_blank_values=True))
            if "application/x-www-form-urlencoded" in content_type
            else {}
        )
        recorded = RecordedRequest(
            method=request.method,
            path=request.url.path,
            url=str(request.url),
            query=dict(parse_qsl(request.url.query.decode(), keep_blank_values=True)),
            form=form,
            headers={k.lower(): v for k, v in request.headers.items()},
        )
        self.requests.append(recorded)
        endpoint = next((e for e, p in ENDPOINT_PATHS.items() if p == recorded.path), None)
        if endpoint is None:
            return _json(404, {"error": "not_found"})
        failure = self._take_failure(endpoint)
        if failure is not None:
            return self._failure_response(failure, request)
        handler: Callable[[RecordedRequest], httpx2.Response] = getattr(self, f"_serve_{endpoint}")
        return handler(recorded)

    def _take_failure(self, endpoint: str) -> FailureMode | None:
        failure = self._failures.get(endpoint)
        if failure is None:
            return None
        if failure.remaining is not None:
            failure.remaining -= 1
            if failure.remaining <= 0:
                del self._failures[endpoint]
        return failure.mode

    def _failure_response(self, mode: FailureMode, request: httpx2.Request) -> httpx2.Response:
        if mode == "5xx":
            return httpx2.Response(503, text="<html>upstream unavailable</html>")
        if mode == "garbage":
            return httpx2.Response(
                200, text="<html>not json", headers={"content-type": "application/json"}
            )
        if mode == "timeout":
            raise httpx2.ReadTimeout("fake IdP timed out", request=request)
        if mode == "network":
            raise httpx2.ConnectError("fake IdP unreachable", request=request)
        return _json(400, {"error": mode, "error_description": f"fake IdP says {mode}"})

    def _serve_discovery(self, request: RecordedRequest) -> httpx2.Response:
        return _json(200, self.discovery_document())

    def _serve_jwks(self, request: RecordedRequest) -> httpx2.Response:
        return _json(200, self.jwks())

    def _serve_authorize(self, request: RecordedRequest) -> httpx2.Response:
        return httpx2.Response(400, text="the authorize endpoint is for browsers")

    def _serve_end_session(self, request: RecordedRequest) -> httpx2.Response:
        return httpx2.Response(200, text="signed out")

    def _client_ok(self, request: RecordedRequest) -> bool:
        basic = request.basic_auth
        post = (request.form.get("client_id"), request.form.get("client_secret"))
        expected = (self.client_id, self.client_secret)
        if self.token_endpoint_auth_method == "client_secret_basic":
            return basic == expected
        if self.token_endpoint_auth_method == "client_secret_post":
            return post == expected
        return basic == expected or post == expected

    def _serve_token(self, request: RecordedRequest) -> httpx2.Response:
        if request.method != "POST":
            return _json(405, {"error": "invalid_request"})
        if not self._client_ok(request):
            return _json(401, {"error": "invalid_client"})
        grant_type = request.form.get("grant_type")
        if grant_type == "authorization_code":
            return self._code_grant(request.form)
        if grant_type == "refresh_token":
            return self._refresh_grant(request.form)
        return _json(400, {"error": "unsupported_grant_type"})

    def _code_grant(self, form: Mapping[str, str]) -> httpx2.Response:
        grant = self._grants.get(form.get("code", ""))
        if grant is None or grant.used:
            return _invalid_grant("unknown or used authorization code")
        grant.used = True
        if grant.redirect_uri != form.get("redirect_uri"):
            return _invalid_grant("redirect_uri mismatch")
        if grant.code_challenge is not None:
            verifier = form.get("code_verifier")
            if grant.code_challenge_method != "S256" or verifier is None:
                return _invalid_grant("PKCE verifier missing")
            if s256(verifier) != grant.code_challenge:
                return _invalid_grant("PKCE verification failed")
        elif "code_verifier" in form:
            return _invalid_grant("code_verifier without a code_challenge")
        body = self._tokens(grant.scope, nonce=grant.nonce, with_id_token=True)
        refresh = f"rt-{next(self._counter)}"
        self._refresh_tokens[refresh] = grant.scope
        body["refresh_token"] = refresh
        return _json(200, body)

    def _refresh_grant(self, form: Mapping[str, str]) -> httpx2.Response:
        token = form.get("refresh_token", "")
        if token in self._spent_refresh_tokens:
            return _invalid_grant("refresh token reused")
        scope = self._refresh_tokens.get(token)
        if scope is None:
            return _invalid_grant("unknown refresh token")
        body = self._tokens(
            form.get("scope") or scope, nonce=None, with_id_token=self.id_token_on_refresh
        )
        if self.rotate_refresh_tokens:
            del self._refresh_tokens[token]
            self._spent_refresh_tokens.add(token)
            new = f"rt-{next(self._counter)}"
            self._refresh_tokens[new] = scope
            body["refresh_token"] = new
        return _json(200, body)

    def _tokens(self, scope: str, *, nonce: str | None, with_id_token: bool) -> dict[str, Any]:
        access = f"at-{next(self._counter)}"
        self._access_tokens[access] = scope
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.access_token_lifetime,
            "scope": self.token_scope if self.token_scope is not None else scope,
        }
        if with_id_token and "openid" in scope.split():
            body["id_token"] = self.make_id_token(nonce=nonce)
        return body

    def _serve_userinfo(self, request: RecordedRequest) -> httpx2.Response:
        if request.bearer not in self._access_tokens:
            return _json(401, {"error": "invalid_token"})
        return _json(200, self.userinfo_document())

    def _serve_revocation(self, request: RecordedRequest) -> httpx2.Response:
        if request.method != "POST":
            return _json(405, {"error": "invalid_request"})
        if not self._client_ok(request):
            return _json(401, {"error": "invalid_client"})
        token = request.form.get("token", "")
        self.revoked.append(token)
        self._refresh_tokens.pop(token, None)
        self._access_tokens.pop(token, None)
        return httpx2.Response(200)

    @staticmethod
    def _generate(kid: str) -> RSAKey:
        return _rsa_key(kid)


@functools.cache
def _ec_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "foreign-ec-key"})


@functools.cache
def _rsa_key(kid: str) -> RSAKey:
    # One key per kid for the whole run: RSA generation is the slowest thing here.
    return RSAKey.generate_key(2048, parameters={"kid": kid})


def _json(status: int, body: Any) -> httpx2.Response:
    return httpx2.Response(status, json=body)


def _invalid_grant(description: str) -> httpx2.Response:
    return _json(400, {"error": "invalid_grant", "error_description": description})
