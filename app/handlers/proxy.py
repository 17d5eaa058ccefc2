"""Proxy-style providers (guest, and the ones behind authenticating proxies).

Their identity comes from the incoming request (or from nowhere, for guest), so
``/refresh`` signs in on every call: no CSRF header, no cookies, ``env`` ignored;
``/start`` and ``/handler/frame`` are 501.
(``plugins/auth-node/src/proxy/createProxyRouteHandlers.ts``)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from connexion import request
from starlette.responses import Response

from app.core.deadline import request_deadline
from app.core.errors import NotImplementedError_
from app.handlers.context import ProxyProviderRuntime
from app.handlers.peer import peer_host
from app.handlers.responses import TOKEN_HEADERS, json_response
from app.handlers.sign_in import sign_in_steps, traced_sign_in
from app.identity.types import BackstageIdentity, SignInInfo
from app.providers.base import ProxyRequest, ProxyResult


async def start(runtime: ProxyProviderRuntime, **_: Any) -> Response:
    raise NotImplementedError_("Not implemented")


async def frame_handler(runtime: ProxyProviderRuntime, **_: Any) -> Response:
    raise NotImplementedError_("Not implemented")


# The same handler for each operation of the callback (operationIds are unique per document).
frame_handler_alias = frame_handler
frame_handler_form_post = frame_handler


def first_values(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Each header name with its first value (as ``dict(request.headers)``), in one pass:
    copying Starlette's ``Headers`` name by name scans every field per name, quadratic in
    the number of fields a client chooses to send."""
    headers: dict[str, str] = {}
    for name, value in raw:
        headers.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return headers


async def refresh(runtime: ProxyProviderRuntime, **_: Any) -> Response:
    async with request_deadline(
        runtime.services.settings.request_deadline_seconds, "Authentication failed"
    ):
        result, identity = await _sign_in(runtime)
    body: dict[str, Any] = {"profile": result.profile.to_json()}
    if result.provider_info is not None:
        body["providerInfo"] = dict(result.provider_info)
    body["backstageIdentity"] = identity.to_json()
    return json_response(body, headers=TOKEN_HEADERS)


refresh_post = refresh


async def _sign_in(runtime: ProxyProviderRuntime) -> tuple[ProxyResult, BackstageIdentity]:
    result = await runtime.authenticator.authenticate(
        ProxyRequest(
            headers=first_values(request.headers.raw),
            cookies=dict(request.cookies),
            # The direct peer: header-trusting providers check it against their proxies.
            client_host=peer_host(request.scope),
        )
    )
    try:
        identity = await traced_sign_in(
            runtime.services,
            runtime.sign_in,
            SignInInfo(runtime.provider_id, result.profile, result.sign_in_facts),
        )
    except Exception as exc:
        runtime.services.audit.event(
            "sign_in_failed",
            provider=runtime.provider_id,
            reason=getattr(exc, "message", str(exc)),
            **sign_in_steps(exc),
        )
        raise
    return result, identity
