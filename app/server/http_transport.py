"""The outbound HTTP transport: httpx2's API (Authlib's client speaks it) over aiohttp.

httpx2 rather than httpx: Authlib builds its client on httpx2 whenever it is importable,
so a transport (or timeout, or exception) of httpx would stop working the day anything
installs httpx2 beside us; on httpx2, one code path whatever else is installed.

httpx2's own transport (httpcore2 over anyio) costs about twice aiohttp's CPU per call to
an identity provider, and /refresh makes two of them (docs/benchmarks.md). httpx-aiohttp
(its ``httpx2`` variant) is the adapter the OpenAI SDK ships for the same reason. Its
exception mapping is coarse (a refused connection comes out as a connect *timeout*, some
aiohttp errors not at all), so failures are translated here from aiohttp's own exception:
every failure of an upstream call reaches the providers as the ``httpx2.TransportError``
httpx2 itself would raise (a clear 503 that names it, never a 500).

Every outbound call (providers, key endpoints, the catalog) goes through one instance,
which honours the environment's proxy variables (``proxy_env``) and trusted certificate
authorities (``trust``): a request to a host that ``NO_PROXY`` names goes direct, any other
through its scheme's proxy (one aiohttp session per proxy, all sharing the TLS trust).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping

import aiohttp
import httpx2
from httpx_aiohttp.httpx2 import AiohttpTransport

from app.core.deadline import capped, time_left
from app.server.proxy_env import ProxyRules
from app.server.trust import Trust, trust_from_environ

_LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=20)

# Most specific first.
_TRANSLATIONS: tuple[tuple[type[BaseException], type[httpx2.TransportError]], ...] = (
    (aiohttp.ClientProxyConnectionError, httpx2.ProxyError),
    (aiohttp.ClientHttpProxyError, httpx2.ProxyError),
    (aiohttp.ConnectionTimeoutError, httpx2.ConnectTimeout),
    (aiohttp.ServerTimeoutError, httpx2.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx2.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx2.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx2.ReadError),
    (aiohttp.ClientResponseError, httpx2.RemoteProtocolError),
    (aiohttp.InvalidURL, httpx2.UnsupportedProtocol),
    (aiohttp.ClientConnectionError, httpx2.ReadError),
    (aiohttp.ClientError, httpx2.RemoteProtocolError),
    (TimeoutError, httpx2.PoolTimeout),
)


def _translate(
    exc: BaseException, request: httpx2.Request, trust: str = ""
) -> httpx2.TransportError | None:
    """The httpx2 error for an aiohttp failure (itself, or the cause of the adapter's)."""
    original = exc.__cause__ if isinstance(exc, httpx2.TransportError) else exc
    if original is None:
        return None
    if isinstance(original, aiohttp.ClientConnectorCertificateError):
        # The operator's question is "which host, and what did we trust?".
        reason = getattr(original.certificate_error, "verify_message", None) or str(
            original.certificate_error
        )
        return httpx2.ConnectError(
            f"TLS certificate of {request.url.host} not trusted ({reason}); trusted: {trust}",
            request=request,
        )
    for aiohttp_type, httpx_type in _TRANSLATIONS:
        if isinstance(original, aiohttp_type):
            return httpx_type(str(original) or type(original).__name__, request=request)
    return None


class _TranslatedStream(httpx2.AsyncByteStream):
    def __init__(self, stream: httpx2.AsyncByteStream, request: httpx2.Request) -> None:
        self._stream = stream
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        except (TimeoutError, httpx2.TransportError, aiohttp.ClientError) as exc:
            translated = _translate(exc, self._request)
            if translated is None:
                raise
            raise translated from exc

    async def aclose(self) -> None:
        await self._stream.aclose()


def _cap_to_request_deadline(request: httpx2.Request) -> None:
    """Inside an incoming request's deadline, each phase of this call (and of each retry,
    a call of its own) gets the smaller of its own timeout and the time left."""
    left = time_left()
    if left is None:
        return
    timeouts = request.extensions.get("timeout")
    phases = timeouts if isinstance(timeouts, dict) else dict.fromkeys(_PHASES)
    request.extensions["timeout"] = {
        phase: capped(value if isinstance(value, int | float) else left)
        for phase, value in phases.items()
    }


_PHASES = ("connect", "read", "write", "pool")


class OutboundTransport(httpx2.AsyncBaseTransport):
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.proxies = ProxyRules.from_environ(environ)
        self.trust: Trust = trust_from_environ(environ)
        self._direct = self._session(None)
        self._via: dict[str, AiohttpTransport] = {}

    def _session(self, proxy: str | None) -> AiohttpTransport:
        return AiohttpTransport(
            verify=self.trust.context,
            trust_env=False,
            limits=_LIMITS,
            proxy=httpx2.Proxy(proxy) if proxy is not None else None,
        )

    def _route(self, request: httpx2.Request) -> AiohttpTransport:
        proxy = self.proxies.proxy_for(str(request.url))
        if proxy is None:
            return self._direct
        if proxy not in self._via:
            self._via[proxy] = self._session(proxy)
        return self._via[proxy]

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        _cap_to_request_deadline(request)
        try:
            response = await self._route(request).handle_async_request(request)
        except (TimeoutError, httpx2.TransportError, aiohttp.ClientError) as exc:
            translated = _translate(exc, request, self.trust.description)
            if translated is None:
                raise
            raise translated from exc
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        response.stream = _TranslatedStream(response.stream, request)
        return response

    async def aclose(self) -> None:
        await self._direct.aclose()
        for transport in self._via.values():
            await transport.aclose()
        self._via.clear()
