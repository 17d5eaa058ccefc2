"""Behind a corporate network: this server reaches the identity provider through a real
forward proxy (tinyproxy), proven by the proxy's own access log; NO_PROXY hosts bypass it;
a proxy that refuses connections gives a clean sign-in error, never a 500."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import pytest
import trustme

from app.server.http_transport import OutboundTransport
from tests.support.forward_proxy import ForwardProxy
from tests.support.oidc_provider import (
    OpenIDProvider,
    backstage_client,
    frame_callback,
    free_port,
    popup_sign_in,
    start_openid_provider,
)
from tests.support.popup import popup_message
from tests.support.server import AuthServer
from tests.support.tls_server import tls_metadata_server

pytestmark = pytest.mark.integration

APP_ORIGIN = "http://localhost:3000"
SCOPE = "openid email profile"
NO_PROXY_VARS = ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def _config(op: OpenIDProvider, port: int) -> dict[str, Any]:
    return {
        "app": {"baseUrl": APP_ORIGIN},
        "backend": {"baseUrl": f"http://localhost:{port}"},
        "auth": {
            "session": {"secret": "corporate-network-secret-of-32-characters"},
            "providers": {"oidc": {"development": op.environment()}},
        },
    }


@pytest.fixture(scope="module")
def ports() -> list[int]:
    return [free_port() for _ in range(3)]


@pytest.fixture(scope="module")
def op(ports: list[int]) -> Iterator[OpenIDProvider]:
    provider = start_openid_provider(
        clients=[backstage_client(*(frame_callback(f"http://localhost:{port}") for port in ports))]
    )
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForwardProxy]:
    forward = ForwardProxy(tmp_path_factory.mktemp("proxy")).start()
    try:
        yield forward
    finally:
        forward.stop()


def _server(op: OpenIDProvider, workdir: Path, port: int, **env: str) -> AuthServer:
    clean = {**{name: "" for name in NO_PROXY_VARS}, **env}
    return AuthServer(_config(op, port), workdir, port=port, env=clean)


def _sign_in(server: AuthServer, op: OpenIDProvider) -> dict[str, Any]:
    with httpx2.Client(follow_redirects=False, timeout=15.0, trust_env=False) as browser:
        page = popup_sign_in(
            browser, f"{server.base_url}/api/auth", login="alice", scope=SCOPE, origin=APP_ORIGIN
        )
        assert page.status_code == 200
        return popup_message(page.text)


def test_sign_in_through_the_proxy(
    op: OpenIDProvider, proxy: ForwardProxy, ports: list[int], tmp_path: Path
) -> None:
    with _server(op, tmp_path, ports[0], HTTP_PROXY=proxy.url) as server:
        message = _sign_in(server, op)
    assert "response" in message, message
    identity = message["response"]["backstageIdentity"]["identity"]
    assert identity["userEntityRef"] == "user:default/alice"
    # The proxy's own log: discovery, keys and the code exchange all went through it.
    through = "\n".join(proxy.requests())
    authority = f"localhost:{op.port}"
    assert f"GET http://{authority}/.well-known/openid-configuration HTTP/1.1" in through
    assert f"POST http://{authority}/token HTTP/1.1" in through
    assert f"GET http://{authority}/jwks HTTP/1.1" in through


def test_no_proxy_hosts_bypass_it(
    op: OpenIDProvider, proxy: ForwardProxy, ports: list[int], tmp_path: Path
) -> None:
    before = len(proxy.requests())
    with _server(
        op, tmp_path, ports[1], HTTP_PROXY=proxy.url, NO_PROXY="example.com,localhost"
    ) as server:
        message = _sign_in(server, op)
    assert message["type"] == "authorization_response", message
    assert proxy.requests()[before:] == []


def test_a_refusing_proxy_is_a_clean_sign_in_error(
    op: OpenIDProvider, ports: list[int], tmp_path: Path
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}"  # bound, not listening
        with _server(op, tmp_path, ports[2], HTTP_PROXY=refused) as server:
            with httpx2.Client(follow_redirects=False, timeout=15.0, trust_env=False) as browser:
                start = browser.get(
                    f"{server.base_url}/api/auth/oidc/start",
                    params={"scope": SCOPE, "origin": APP_ORIGIN, "env": "development"},
                )
    assert start.status_code == 503, start.text
    error = start.json()["error"]
    assert error["name"] == "ServiceUnavailableError"
    assert "proxy" in error["message"].lower()


def test_https_through_the_proxy_to_a_private_ca(proxy: ForwardProxy, tmp_path: Path) -> None:
    """The usual corporate case: an https identity provider under a private CA, reached
    through the proxy's CONNECT tunnel (TLS end to end), trusted via NODE_EXTRA_CA_CERTS."""
    ca = trustme.CA()
    bundle = tmp_path / "corporate-ca.pem"
    ca.cert_pem.write_to_path(str(bundle))

    async def get(url: str, environ: dict[str, str]) -> int:
        transport = OutboundTransport(environ)
        async with httpx2.AsyncClient(transport=transport, timeout=10.0) as client:
            return (await client.get(url)).status_code

    with tls_metadata_server(ca) as url:
        env = {"HTTPS_PROXY": proxy.url, "NODE_EXTRA_CA_CERTS": str(bundle)}
        assert asyncio.run(get(url, env)) == 200
        with pytest.raises(httpx2.ConnectError, match="TLS certificate of localhost not trusted"):
            asyncio.run(get(url, {"HTTPS_PROXY": proxy.url}))
    port = urlsplit(url).port
    tunnels = [r for r in proxy.requests() if r.startswith("CONNECT ")]
    assert tunnels[-2:] == [f"CONNECT localhost:{port} HTTP/1.1"] * 2, tunnels
