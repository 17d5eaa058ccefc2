"""Fake key (and identity) endpoints of the authenticating proxies, and their tokens.

``ProxyKeyServer`` is a callable ``httpx2.Request -> httpx2.Response``: pass
``httpx2.MockTransport(server)`` as the transport and the proxy providers' fetches land
here, at their real URLs:

- ``GET https://public-keys.auth.elb.<region>.amazonaws.com/<kid>``  ALB key, PEM
  (GovCloud: ``https://s3-<region>.amazonaws.com/aws-elb-public-keys-prod-<region>/<kid>``)
- ``GET https://www.gstatic.com/iap/verify/public_key-jwk``           IAP keys, JWKS
- ``GET https://<team>.cloudflareaccess.com/cdn-cgi/access/certs``   Access keys, JWKS
- ``GET https://<team>.cloudflareaccess.com/cdn-cgi/access/get-identity``  the identity of
  the token in the request's (first) cookie (``identities`` by ``sub``)

Every request is recorded in ``requests``. ``fail(endpoint, mode, times=None)`` with
endpoint ``"alb" | "iap" | "cf-certs" | "cf-identity"`` and mode ``"5xx"``, ``"404"``,
``"403"``, ``"garbage"`` or ``"network"``. Keys rotate with ``rotate_*``; tokens are
minted with ``alb_token`` (padded base64url segments, as ALBs send them), ``iap_token``,
``cf_token``; ``foreign_*`` keys sign tokens that no endpoint vouches for.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwk import ECKey, RSAKey

from tests.fakes.clock import FakeClock

REGION = "eu-west-1"
TEAM = "acme"
ALB_ARN = (
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:"
    "loadbalancer/app/backstage/50dc6c495c0c9188"
)
ALB_ISSUER = "https://idp.example.test"
IAP_AUDIENCE = "/projects/123456789/global/backendServices/987654321"
IAP_ISSUER = "https://cloud.google.com/iap"
IAP_KEYS_URL = "https://www.gstatic.com/iap/verify/public_key-jwk"
CF_AUDIENCE = "4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2"
CF_ISSUER = f"https://{TEAM}.cloudflareaccess.com"

_DELETE = object()
DELETE: Any = _DELETE
"""An override value that removes a claim or header member."""


@functools.cache
def _rsa_private(index: int) -> rsa.RSAPrivateKey:
    # RSA key generation is slow: each process makes a few and reuses them.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


_rsa_counter = itertools.count()


def rsa_key(kid: str) -> RSAKey:
    """A private RSA key with this kid (from a small per-process pool)."""
    return RSAKey.import_key(_rsa_private(next(_rsa_counter) % 16), parameters={"kid": kid})


def b64url(data: bytes, *, pad: bool = False) -> str:
    text = base64.urlsafe_b64encode(data).decode()
    return text if pad else text.rstrip("=")


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _apply(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if value is _DELETE:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def sign(
    header: Mapping[str, Any],
    claims: Mapping[str, Any],
    key: ECKey | RSAKey,
    *,
    pad: bool = False,
) -> str:
    """A compact JWS signed by hand (ES256 or RS256 by key type), padded if asked."""
    signing_input = f"{b64url(_json(header), pad=pad)}.{b64url(_json(claims), pad=pad)}"
    data = signing_input.encode()
    private = key.private_key
    assert private is not None
    if isinstance(key, ECKey):
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(private.sign(data, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        signature = private.sign(data, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[arg-type, call-arg]
    return f"{signing_input}.{b64url(signature, pad=pad)}"


def unsigned_jwt(claims: Mapping[str, Any], header: Mapping[str, Any] | None = None) -> str:
    """A JWT whose signature nobody checks (what header-trusting proxies forward)."""
    head = dict(header or {"alg": "RS256", "typ": "JWT", "kid": "whatever"})
    return f"{b64url(_json(head))}.{b64url(_json(claims))}.{b64url(b'not-checked')}"


@dataclass
class _Failure:
    mode: str
    remaining: int | None


@dataclass
class ProxyKeyServer:
    clock: FakeClock = field(default_factory=FakeClock)
    region: str = REGION
    team: str = TEAM
    requests: list[httpx2.Request] = field(default_factory=list)
    # Cloudflare identities by token ``sub``; unknown subs get one built from the claims.
    identities: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._counter = 0
        self.alb_keys: dict[str, ECKey] = {}
        self.iap_keys: dict[str, ECKey] = {}
        self.cf_keys: dict[str, RSAKey] = {}
        self.alb_kid = self.rotate_alb()
        self.iap_kid = self.rotate_iap()
        self.cf_kid = self.rotate_cf()
        self.foreign_ec = ECKey.generate_key("P-256", parameters={"kid": self.alb_kid})
        self.foreign_rsa = rsa_key(self.cf_kid)
        self._failures: dict[str, _Failure] = {}

    # -- keys ----------------------------------------------------------------------------

    def _new_kid(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}-{self._counter:04d}-7d3c9a2e"

    def rotate_alb(self) -> str:
        kid = self._new_kid("alb")
        self.alb_keys[kid] = ECKey.generate_key("P-256", parameters={"kid": kid})
        self.alb_kid = kid
        return kid

    def rotate_iap(self) -> str:
        kid = self._new_kid("iap")
        self.iap_keys[kid] = ECKey.generate_key("P-256", parameters={"kid": kid})
        self.iap_kid = kid
        return kid

    def rotate_cf(self) -> str:
        kid = self._new_kid("cf")
        self.cf_keys[kid] = rsa_key(kid)
        self.cf_kid = kid
        return kid

    def fail(self, endpoint: str, mode: str, times: int | None = None) -> None:
        self._failures[endpoint] = _Failure(mode, times)

    def requests_to(self, endpoint: str) -> list[httpx2.Request]:
        return [r for r in self.requests if self._endpoint(r.url) == endpoint]

    # -- tokens ----------------------------------------------------------------------------

    @property
    def now(self) -> int:
        return int(self.clock.now())

    def alb_token(
        self,
        *,
        claims: Mapping[str, Any] | None = None,
        header: Mapping[str, Any] | None = None,
        key: ECKey | None = None,
        pad: bool = True,
    ) -> str:
        base_header = {
            "typ": "JWT",
            "kid": self.alb_kid,
            "alg": "ES256",
            "iss": ALB_ISSUER,
            "client": "backstage-client",
            "signer": ALB_ARN,
            "exp": self.now + 120,
        }
        base_claims = {
            "sub": "9f8e7d6c",
            "email": "jane@example.com",
            "name": "Jane Doe",
            "picture": "https://example.com/jane.png",
            "exp": self.now + 120,
            "iss": ALB_ISSUER,
        }
        head = _apply(base_header, header or {})
        signing_key = key or self.alb_keys[str(head.get("kid", self.alb_kid))]
        return sign(head, _apply(base_claims, claims or {}), signing_key, pad=pad)

    def iap_token(
        self,
        *,
        claims: Mapping[str, Any] | None = None,
        header: Mapping[str, Any] | None = None,
        key: ECKey | None = None,
    ) -> str:
        base_header = {"alg": "ES256", "typ": "JWT", "kid": self.iap_kid}
        base_claims = {
            "aud": IAP_AUDIENCE,
            "email": "jane@example.com",
            "exp": self.now + 600,
            "iat": self.now,
            "iss": IAP_ISSUER,
            "sub": "accounts.google.com:1122334455",
            "hd": "example.com",
        }
        head = _apply(base_header, header or {})
        signing_key = key or self.iap_keys[str(head.get("kid", self.iap_kid))]
        return sign(head, _apply(base_claims, claims or {}), signing_key)

    def cf_token(
        self,
        *,
        claims: Mapping[str, Any] | None = None,
        header: Mapping[str, Any] | None = None,
        key: RSAKey | None = None,
        service_token: str | None = None,
    ) -> str:
        base_header = {"alg": "RS256", "kid": self.cf_kid, "typ": "JWT"}
        base_claims: dict[str, Any] = {
            "aud": [CF_AUDIENCE],
            "email": "jane@example.com",
            "exp": self.now + 3600,
            "iat": self.now,
            "nbf": self.now,
            "iss": f"https://{self.team}.cloudflareaccess.com",
            "type": "app",
            "identity_nonce": "6ei69kawdKzMIAPF",
            "sub": "7335d417-61da-459d-899c-0a01c76a2f94",
            "country": "NL",
        }
        if service_token is not None:
            base_claims = _apply(
                base_claims,
                {
                    "sub": "",
                    "email": DELETE,
                    "identity_nonce": DELETE,
                    "common_name": service_token,
                },
            )
        head = _apply(base_header, header or {})
        signing_key = key or self.cf_keys[str(head.get("kid", self.cf_kid))]
        return sign(head, _apply(base_claims, claims or {}), signing_key)

    # -- HTTP ------------------------------------------------------------------------------

    def _endpoint(self, url: httpx2.URL) -> str | None:
        host, path = url.host, url.path
        if host == f"public-keys.auth.elb.{self.region}.amazonaws.com":
            return "alb"
        if host == f"s3-{self.region}.amazonaws.com" and path.startswith(
            f"/aws-elb-public-keys-prod-{self.region}/"
        ):
            return "alb"
        if host == "www.gstatic.com" and path == "/iap/verify/public_key-jwk":
            return "iap"
        if host == f"{self.team}.cloudflareaccess.com":
            if path == "/cdn-cgi/access/certs":
                return "cf-certs"
            if path == "/cdn-cgi/access/get-identity":
                return "cf-identity"
        return None

    def _failure(self, endpoint: str) -> httpx2.Response | None:
        failure = self._failures.get(endpoint)
        if failure is None or failure.remaining == 0:
            return None
        if failure.remaining is not None:
            failure.remaining -= 1
        if failure.mode == "network":
            raise httpx2.ConnectError("connection refused")
        if failure.mode == "garbage":
            return httpx2.Response(200, content=b"<html>surprise</html>")
        status = {"5xx": 503, "404": 404, "403": 403}[failure.mode]
        return httpx2.Response(status, content=b"no")

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        endpoint = self._endpoint(request.url)
        if endpoint is None:
            return httpx2.Response(404, content=b"not a fake endpoint")
        failed = self._failure(endpoint)
        if failed is not None:
            return failed
        if endpoint == "alb":
            kid = request.url.path.rsplit("/", 1)[-1]
            key = self.alb_keys.get(kid)
            if key is None:
                # S3 answers 403 for a missing object.
                return httpx2.Response(403, content=b"AccessDenied")
            return httpx2.Response(200, content=key.as_pem(private=False))
        if endpoint == "iap":
            keys = [
                k.as_dict(private=False) | {"alg": "ES256", "use": "sig"}
                for k in self.iap_keys.values()
            ]
            return httpx2.Response(200, json={"keys": keys})
        if endpoint == "cf-certs":
            keys = [
                k.as_dict(private=False) | {"alg": "RS256", "use": "sig"}
                for k in self.cf_keys.values()
            ]
            return httpx2.Response(200, json={"keys": keys, "public_cert": {}, "public_certs": []})
        return self._identity(request)

    def _identity(self, request: httpx2.Request) -> httpx2.Response:
        # Access reads its cookie (whatever the app calls it): the first cookie here.
        cookie_header = request.headers.get("cookie", "")
        token = cookie_header.split(";")[0].partition("=")[2].strip() if cookie_header else ""
        if not token:
            return httpx2.Response(401, json={"err": "no token"})
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        sub = claims.get("sub", "")
        identity = self.identities.get(sub) or {
            "id": sub,
            "name": "Jane Doe",
            "email": claims.get("email"),
            "groups": [{"id": "g1", "name": "Engineering", "email": "eng@example.com"}],
        }
        return httpx2.Response(200, json=identity)
