"""The outbound transport against real sockets: answers pass through, and every failure
comes out as the httpx error httpx's own transport would raise."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx2
import pytest

from app.core.deadline import request_deadline
from app.server.http_transport import OutboundTransport

pytestmark = pytest.mark.anyio

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


async def _server(serve: Serve) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/x"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(anyio_backend: str) -> AsyncIterator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(transport=OutboundTransport(), timeout=1.0) as c:
        yield c


async def test_an_answer_passes_through_with_its_headers_and_body(
    client: httpx2.AsyncClient,
) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await _read_head(reader)
        body = b'{"seen": "%s"}' % head.split(b"\r\n")[0].split(b" ")[1]
        writer.write(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-A: 1\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server, url = await _server(serve)
    async with server:
        response = await client.post(url + "?q=1", data={"a": "b"})
    assert response.status_code == 201
    assert response.headers["x-a"] == "1"
    assert response.json() == {"seen": "/x?q=1"}


async def test_a_refused_connection_is_a_connect_error(client: httpx2.AsyncClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(httpx2.ConnectError) as caught:
        await client.get(f"http://127.0.0.1:{port}/")
    assert caught.value.request.url.port == port


async def test_a_silent_server_is_a_read_timeout(client: httpx2.AsyncClient) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.sleep(5)
        finally:
            writer.close()

    server, url = await _server(serve)
    async with server:
        with pytest.raises(httpx2.ReadTimeout):
            await client.get(url, timeout=0.3)


@pytest.mark.parametrize(
    "answer",
    [b"", b"this is not HTTP\r\n\r\n"],
    ids=["hang-up", "garbage"],
)
async def test_a_server_that_breaks_the_protocol_is_a_protocol_error(
    client: httpx2.AsyncClient, answer: bytes
) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(answer)
        await writer.drain()
        writer.close()

    server, url = await _server(serve)
    async with server:
        with pytest.raises(httpx2.RemoteProtocolError):
            await client.get(url)


async def test_a_body_cut_short_is_a_read_error(client: httpx2.AsyncClient) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part")
        await writer.drain()
        writer.close()

    server, url = await _server(serve)
    async with server:
        with pytest.raises(httpx2.ReadError):
            await client.get(url)


async def test_inside_a_request_deadline_each_call_gets_at_most_the_time_left(
    anyio_backend: str,
) -> None:
    transport = OutboundTransport({})
    seen: list[dict[str, float]] = []

    async def capture(request: httpx2.Request) -> httpx2.Response:
        seen.append(dict(request.extensions["timeout"]))
        return httpx2.Response(204)

    transport._direct.handle_async_request = capture  # type: ignore[method-assign]
    own = httpx2.Timeout(10.0, connect=0.2)
    async with httpx2.AsyncClient(transport=transport, timeout=own) as client:
        await client.get("http://127.0.0.1:9/")
        async with request_deadline(3.0, "Authentication failed"):
            await asyncio.sleep(0.5)
            await client.get("http://127.0.0.1:9/")
    assert seen[0] == {"connect": 0.2, "read": 10.0, "write": 10.0, "pool": 10.0}
    assert seen[1]["connect"] == 0.2  # its own figure is the smaller
    for phase in ("read", "write", "pool"):
        assert 2.0 < seen[1][phase] <= 2.5, seen[1]
