"""Each proxy provider's rendered spec holds, checked by schemathesis against the real app.

Two runs per provider: requests as schemathesis generates them (no identity: every
``/refresh`` is a documented 401), and the same requests carrying a valid identity from
the fake proxy (``/refresh`` answers 200, validated against ``ClientAuthResponse``). The
app sees ``PROXY_PEER`` as its peer, so the header-trusting providers get past their
``trustedProxies`` check. ``/start`` and ``/handler/frame`` are a documented 501 for
proxy providers, so ``not_a_server_error`` is not run on them.
"""

from __future__ import annotations

from collections.abc import Callable

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.fakes.proxy_keys import ProxyKeyServer, unsigned_jwt
from tests.proxy.helpers import PROXY_PEER, build, entra_id_token

SERVER = ProxyKeyServer()


class _FromPeer:
    """Every request arrives from ``peer`` (what the ASGI server would report)."""

    def __init__(self, app: ASGIApp, peer: str) -> None:
        self.app = app
        self.peer = peer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "client": (self.peer, 50123)}
        await self.app(scope, receive, send)


APP = _FromPeer(build(SERVER, validate_responses=True), PROXY_PEER)

IDENTITY_HEADERS: dict[str, Callable[[], dict[str, str]]] = {
    "awsalb": lambda: {
        "x-amzn-oidc-data": SERVER.alb_token(),
        "x-amzn-oidc-accesstoken": "alb-at",
    },
    "gcpIap": lambda: {"x-goog-iap-jwt-assertion": SERVER.iap_token()},
    "cfaccess": lambda: {"cf-access-jwt-assertion": SERVER.cf_token()},
    "oauth2Proxy": lambda: {
        "x-forwarded-user": "jane",
        "x-forwarded-email": "jane@example.com",
        "x-oauth2-proxy-id-token": f"Bearer {unsigned_jwt({'sub': 'jane'})}",
    },
    "azureEasyAuth": lambda: {
        "x-ms-token-aad-id-token": entra_id_token(),
        "x-ms-token-aad-access-token": "aad-at",
    },
}

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _check(case: schemathesis.Case, provider: str, *, with_identity: bool) -> None:
    headers = IDENTITY_HEADERS[provider]() if with_identity else None
    is_refresh = case.operation.path == "/refresh"
    response = case.call_and_validate(
        headers=headers, excluded_checks=[] if is_refresh else [not_a_server_error]
    )
    meta = case.meta
    positive = meta is None or meta.generation.mode == GenerationMode.POSITIVE
    if not positive or case.method.upper() != case.operation.method.upper():
        return  # unsupported methods and invalid inputs: schemathesis' checks only
    if is_refresh:
        assert response.status_code == (200 if with_identity else 401), response.text
    else:
        # 501 for every request Backstage would see; the spec may refuse malformed query
        # values first (a documented 400).
        assert response.status_code in (501, 400), response.text


def _schema(provider: str) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_asgi(f"/api/auth/{provider}/openapi.json", APP)


awsalb = _schema("awsalb")
gcp_iap = _schema("gcpIap")
cfaccess = _schema("cfaccess")
oauth2_proxy = _schema("oauth2Proxy")
azure_easyauth = _schema("azureEasyAuth")


@awsalb.parametrize()
@SETTINGS
def test_awsalb(case: schemathesis.Case) -> None:
    _check(case, "awsalb", with_identity=False)


@awsalb.parametrize()
@SETTINGS
def test_awsalb_with_identity(case: schemathesis.Case) -> None:
    _check(case, "awsalb", with_identity=True)


@gcp_iap.parametrize()
@SETTINGS
def test_gcp_iap(case: schemathesis.Case) -> None:
    _check(case, "gcpIap", with_identity=False)


@gcp_iap.parametrize()
@SETTINGS
def test_gcp_iap_with_identity(case: schemathesis.Case) -> None:
    _check(case, "gcpIap", with_identity=True)


@cfaccess.parametrize()
@SETTINGS
def test_cfaccess(case: schemathesis.Case) -> None:
    _check(case, "cfaccess", with_identity=False)


@cfaccess.parametrize()
@SETTINGS
def test_cfaccess_with_identity(case: schemathesis.Case) -> None:
    _check(case, "cfaccess", with_identity=True)


@oauth2_proxy.parametrize()
@SETTINGS
def test_oauth2_proxy(case: schemathesis.Case) -> None:
    _check(case, "oauth2Proxy", with_identity=False)


@oauth2_proxy.parametrize()
@SETTINGS
def test_oauth2_proxy_with_identity(case: schemathesis.Case) -> None:
    _check(case, "oauth2Proxy", with_identity=True)


@azure_easyauth.parametrize()
@SETTINGS
def test_azure_easyauth(case: schemathesis.Case) -> None:
    _check(case, "azureEasyAuth", with_identity=False)


@azure_easyauth.parametrize()
@SETTINGS
def test_azure_easyauth_with_identity(case: schemathesis.Case) -> None:
    _check(case, "azureEasyAuth", with_identity=True)
