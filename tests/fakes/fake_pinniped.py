"""A fake Pinniped Supervisor FederationDomain, shaped after Pinniped's docs and tests.

- ``<issuer>/.well-known/openid-configuration``: Pinniped's discovery (no userinfo,
  revocation or end-session endpoint; ``ES256`` ID tokens; ``S256`` PKCE; the
  ``discovery.supervisor.pinniped.dev/v1alpha1`` member).
- ``<issuer>/jwks.json``: the FederationDomain's EC P-256 signing key.
- ``<issuer>/oauth2/authorize``: ``FakeIdP.authorize(url)`` plays the browser, as ever.
- ``<issuer>/oauth2/token``: authorization_code and refresh_token are the wrapped
  ``FakeIdP``'s (so ``idp.fail("token", ...)``, PKCE and rotation apply), their ID tokens
  re-signed ES256 by the FederationDomain with Pinniped's ``username``/``groups`` claims;
  the RFC 8693 token exchange is the Supervisor's own: ``subject_token`` an access token
  it issued with ``pinniped:request-audience``, ``subject_token_type`` access_token,
  ``requested_token_type`` jwt, an ``audience`` that is not reserved (``.pinniped.dev``) and
  not the client's id; it answers ``{access_token: <ID token for the audience>,
  issued_token_type: ...:jwt, token_type: N_A}``, or fosite's ``invalid_request``.

Knobs: ``fail("exchange", mode)`` (``ServiceFake``'s modes); ``exchanges`` records each
exchange request. The Supervisor's refusals come from the checks above (an audience with
``.pinniped.dev`` in it, say).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx2
from joserfc import jws
from joserfc.jwk import ECKey

from tests.fakes.fake_idp import FakeIdP, RecordedRequest, sign_es256
from tests.fakes.service_fake import ServiceFake, record

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
REQUEST_AUDIENCE_SCOPE = "pinniped:request-audience"
USERNAME = "jane@example.com"
GROUPS = ["k8s-admins", "developers"]
# fosite's invalid_request description, to which Pinniped appends its reason.
_MALFORMED = (
    "The request is missing a required parameter, includes an invalid parameter value, "
    "includes a parameter more than once, or is otherwise malformed."
)


class FakePinniped(ServiceFake):
    def __init__(self, idp: FakeIdP, *, issuer: str | None = None) -> None:
        super().__init__(idp)
        # The FederationDomain's issuer; by default the FakeIdP's (the schema suite talks
        # to a bare FakeIdP with the same provider config).
        self.issuer = (issuer or idp.issuer).rstrip("/")
        prefix = urlsplit(self.issuer).path
        self.paths = {
            "discovery": f"{prefix}/.well-known/openid-configuration",
            "jwks": f"{prefix}/jwks.json",
            "authorize": f"{prefix}/oauth2/authorize",
            "token": f"{prefix}/oauth2/token",
        }
        self.key = ECKey.generate_key("P-256", parameters={"kid": "pinniped-fd-key"})
        self.scopes: dict[str, str] = {}  # access token -> granted scope
        self.exchanges: list[RecordedRequest] = []

    def url(self, endpoint: str) -> str:
        origin = urlsplit(self.issuer)
        return f"{origin.scheme}://{origin.netloc}{self.paths[endpoint]}"

    # -- the Supervisor's documents ------------------------------------------------------

    def discovery_document(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.url("authorize"),
            "token_endpoint": self.url("token"),
            "jwks_uri": self.url("jwks"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query", "form_post"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "scopes_supported": [
                "openid",
                "offline_access",
                REQUEST_AUDIENCE_SCOPE,
                "username",
                "groups",
            ],
            "claims_supported": ["username", "groups", "additionalClaims"],
            "code_challenge_methods_supported": ["S256"],
            "discovery.supervisor.pinniped.dev/v1alpha1": {
                "pinniped_identity_providers_endpoint": (
                    f"{self.issuer}/v1alpha1/pinniped_identity_providers"
                )
            },
        }

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": "ES256", "typ": "JWT", "kid": self.key.kid}
        return sign_es256(header, claims, self.key)

    # -- the transport -------------------------------------------------------------------

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path == self.paths["token"] and not _is_exchange(request):
            self.requests.append(record(request))
            return self._forward(request, "token")
        return super().__call__(request)

    def shape_token(self, body: dict[str, Any]) -> dict[str, Any]:
        self.scopes[body["access_token"]] = str(body.get("scope", ""))
        id_token = body.get("id_token")
        if not isinstance(id_token, str):
            return body
        claims = json.loads(jws.extract_compact(id_token.encode()).payload)
        claims.update({"iss": self.issuer, "username": USERNAME, "groups": GROUPS})
        return {**body, "id_token": self.sign(claims)}

    def route(self, request: RecordedRequest) -> str | None:
        if request.method == "GET" and request.path == self.paths["discovery"]:
            return "discovery"
        if request.method == "GET" and request.path == self.paths["jwks"]:
            return "jwks"
        if request.method == "POST" and request.path == self.paths["token"]:
            return "exchange"
        return None

    def serve_discovery(self, request: RecordedRequest) -> httpx2.Response:
        return httpx2.Response(200, json=self.discovery_document())

    def serve_jwks(self, request: RecordedRequest) -> httpx2.Response:
        jwk = {**self.key.as_dict(private=False), "use": "sig", "alg": "ES256"}
        return httpx2.Response(200, json={"keys": [jwk]})

    def serve_exchange(self, request: RecordedRequest) -> httpx2.Response:
        self.exchanges.append(request)
        form = request.form
        if request.basic_auth != (self.idp.client_id, self.idp.client_secret):
            return _error(401, "invalid_client", "Client authentication failed.")
        subject = form.get("subject_token", "")
        if subject not in self.access_tokens:
            return _error(401, "invalid_token", "Token is inactive because it is malformed.")
        if REQUEST_AUDIENCE_SCOPE not in self.scopes.get(subject, "").split():
            return _error(403, "access_denied", f"missing the '{REQUEST_AUDIENCE_SCOPE}' scope")
        if form.get("subject_token_type") != ACCESS_TOKEN_TYPE:
            return _malformed("unsupported subject_token_type parameter value")
        if form.get("requested_token_type") != JWT_TYPE:
            return _malformed("unsupported requested_token_type parameter value")
        audience = form.get("audience", "")
        if not audience:
            return _malformed("missing audience parameter")
        if ".pinniped.dev" in audience:
            return _malformed("requested audience cannot contain '.pinniped.dev'")
        if audience == self.idp.client_id:
            return _malformed("requested audience cannot equal the client_id")
        now = int(self.idp.clock.now())
        claims = {
            "iss": self.issuer,
            "sub": self.idp.subject,
            "aud": audience,
            "azp": self.idp.client_id,
            "iat": now,
            "exp": now + 120,
            "username": USERNAME,
            "groups": GROUPS,
        }
        return httpx2.Response(
            200,
            json={
                "access_token": self.sign(claims),
                "issued_token_type": JWT_TYPE,
                "token_type": "N_A",
            },
        )


def _is_exchange(request: httpx2.Request) -> bool:
    form = dict(parse_qsl(request.content.decode(), keep_blank_values=True))
    return form.get("grant_type") == TOKEN_EXCHANGE


def _error(status: int, error: str, description: str) -> httpx2.Response:
    return httpx2.Response(status, json={"error": error, "error_description": description})


def _malformed(reason: str) -> httpx2.Response:
    return _error(400, "invalid_request", f"{_MALFORMED} {reason}")
