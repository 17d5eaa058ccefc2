"""The outbound HTTP transport: httpx's API (Authlib's client speaks it) over aiohttp.

httpx's own transport (httpcore over anyio) costs about twice aiohttp's CPU per call to
an identity provider, and /refresh makes two of them (docs/benchmarks.md). httpx-aiohttp
is the adapter the OpenAI SDK ships for the same reason. Its exception mapping is coarse
(a refused connection comes out as a connect *timeout*, some aiohttp errors not at all),
so failures are translated here from aiohttp's own exception: every failure of an
upstream call reaches the providers as the ``httpx.TransportError`` httpx itself would
raise (a clear 503 that names it, never a 500).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

# Most specific first.
_TRANSLATIONS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.ClientConnectionError, httpx.ReadError),
    (aiohttp.ClientError, httpx.RemoteProtocolError),
    (TimeoutError, httpx.PoolTimeout),
)


def _translate(exc: BaseException, request: httpx.Request) -> httpx.TransportError | None:
    """The httpx error for an aiohttp failure (itself, or the cause of the adapter's)."""
    original = exc.__cause__ if isinstance(exc, httpx.TransportError) else exc
    if original is None:
        return None
    for aiohttp_type, httpx_type in _TRANSLATIONS:
        if isinstance(original, aiohttp_type):
            return httpx_type(str(original) or type(original).__name__, request=request)
    return None


class _TranslatedStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, request: httpx.Request) -> None:
        self._stream = stream
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        except (TimeoutError, httpx.TransportError, aiohttp.ClientError) as exc:
            translated = _translate(exc, self._request)
            if translated is None:
                raise
            raise translated from exc

    async def aclose(self) -> None:
        await self._stream.aclose()


class OutboundTransport(AiohttpTransport):
    def __init__(self) -> None:
        # As httpx's default transport: no proxy from the environment; certificates from
        # certifi or SSL_CERT_FILE / SSL_CERT_DIR.
        super().__init__(limits=httpx.Limits(max_connections=100, max_keepalive_connections=20))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await super().handle_async_request(request)
        except (TimeoutError, httpx.TransportError, aiohttp.ClientError) as exc:
            translated = _translate(exc, request)
            if translated is None:
                raise
            raise translated from exc
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _TranslatedStream(response.stream, request)
        return response
