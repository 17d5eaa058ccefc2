"""schemathesis over every mounted spec, in-process, all checks.

Each case is sent through httpx's ASGI transport under a timeout (a request the app never
answers must fail the case, not hang the suite), then validated with
``case.validate_response`` (every check). Providers' operations run twice: as generated,
and with ``X-Requested-With: XMLHttpRequest`` forced so that /refresh and /logout get
past the CSRF check.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from tests.fakes.app_factory import BACKEND_BASE_URL

from .conftest import build_schema_app

TIMEOUT_SECONDS = 5.0
SETTINGS = settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)

# Loaded eagerly: schemathesis' lazy loader (schemathesis.pytest.from_fixture) fails
# under pytest 9 ("'Function' object has no attribute '_nodeid'").
APP = build_schema_app()
stub = schemathesis.openapi.from_asgi("/api/auth/stub/openapi.json", APP)
stubpersist = schemathesis.openapi.from_asgi("/api/auth/stubpersist/openapi.json", APP)
guest = schemathesis.openapi.from_asgi("/api/auth/guest/openapi.json", APP)
identity = schemathesis.openapi.from_asgi("/api/auth/identity/openapi.json", APP)
health = schemathesis.openapi.from_asgi("/.backstage/health/v1/openapi.json", APP)


def _httpx_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "params": kwargs.get("params"),
    }
    headers = dict(kwargs.get("headers") or {})
    cookies = kwargs.get("cookies") or {}
    if cookies:
        # Per-request cookies= is deprecated in httpx: send the header.
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    out["headers"] = headers
    if "json" in kwargs:
        out["json"] = kwargs["json"]
    data = kwargs.get("data")
    if isinstance(data, (bytes, str)):
        out["content"] = data
    elif data is not None:
        out["data"] = data
    if kwargs.get("files"):
        out["files"] = kwargs["files"]
    return out


async def _send(app: Any, kwargs: dict[str, Any]) -> httpx2.Response:
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, follow_redirects=False) as client:
        return await asyncio.wait_for(client.request(**kwargs), TIMEOUT_SECONDS)


# Proxy-style providers answer 501 NotImplementedError on the interactive routes, as
# Backstage does and as their spec documents. `not_a_server_error` refuses every 5xx, so
# there it is replaced by a stricter check: exactly that documented 501, nothing else.
PROXY_NOT_IMPLEMENTED = {
    "guest": ("GET /start", "GET /handler/frame", "POST /handler/frame", "GET /frame/handler")
}


def documented_not_implemented(ctx: Any, response: Any, case: Any) -> None:
    if response.status_code >= 500:
        assert response.status_code == 501, response.status_code
        assert response.json()["error"] == {
            "name": "NotImplementedError",
            "message": "Not implemented",
        }


def _check_overrides(provider: str, label: str) -> dict[str, list[Any]]:
    if label in PROXY_NOT_IMPLEMENTED.get(provider, ()):
        return {
            "excluded_checks": [checks.not_a_server_error],
            "additional_checks": [documented_not_implemented],
        }
    return {}


def run_case(case: Any, *, provider: str = "", force_xrw: bool = False) -> None:
    headers = {"X-Requested-With": "XMLHttpRequest"} if force_xrw else None
    base_url = case.operation.base_url or ""
    if not base_url.startswith("http"):
        base_url = BACKEND_BASE_URL + base_url.rstrip("/")
    kwargs = case.as_transport_kwargs(base_url=base_url, headers=headers)
    try:
        response = asyncio.run(_send(case.operation.app, _httpx_kwargs(kwargs)))
    except TimeoutError:
        pytest.fail(
            f"no response within {TIMEOUT_SECONDS}s (the app hangs):\n"
            + case.as_curl_command(headers=headers, base_url=base_url)
        )
    case.validate_response(
        response,
        headers=kwargs.get("headers"),
        **_check_overrides(provider, case.operation.label),
    )


@stub.parametrize()
@SETTINGS
def test_stub(case: Any) -> None:
    run_case(case, provider="stub")


@stub.parametrize()
@SETTINGS
def test_stub_xrw(case: Any) -> None:
    run_case(case, provider="stub", force_xrw=True)


@stubpersist.parametrize()
@SETTINGS
def test_stubpersist(case: Any) -> None:
    run_case(case, provider="stubpersist")


@stubpersist.parametrize()
@SETTINGS
def test_stubpersist_xrw(case: Any) -> None:
    run_case(case, provider="stubpersist", force_xrw=True)


@guest.parametrize()
@SETTINGS
def test_guest(case: Any) -> None:
    run_case(case, provider="guest")


@guest.parametrize()
@SETTINGS
def test_guest_xrw(case: Any) -> None:
    run_case(case, provider="guest", force_xrw=True)


@identity.parametrize()
@SETTINGS
def test_identity(case: Any) -> None:
    run_case(case)


@health.parametrize()
@SETTINGS
def test_health(case: Any) -> None:
    run_case(case)


@pytest.mark.parametrize("query", [{}, {"env": ""}], ids=["no-env", "empty-env"])
def test_env_is_required_and_refused_with_backstages_message(query: dict[str, str]) -> None:
    operation = stub["/start"]["GET"]
    env = next(p for p in operation.query if p.name == "env")
    assert env.is_required
    case = operation.Case(query=query)
    kwargs = case.as_transport_kwargs(base_url=BACKEND_BASE_URL + "/api/auth/stub")
    response = asyncio.run(_send(APP, _httpx_kwargs(kwargs)))
    assert response.status_code == 400
    assert response.json()["error"] == {
        "name": "InputError",
        "message": "Must specify 'env' query to select environment",
    }
