"""Client ID Metadata Documents behind a corporate network: fetched through a real forward
proxy (tinyproxy, proven by its log) when the server's proxy decision says so, the SSRF
address check still made on the URL's host before anything reaches the proxy, NO_PROXY
hosts fetched directly with the checked addresses pinned, and a refusing proxy answered
with the authorization endpoint's own error."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import trustme

from app.authz.cimd_fetch import fetch_document
from app.config.settings import read_settings
from app.core.errors import InputError
from app.identity.catalog import CatalogUser, InMemoryCatalog
from app.providers.registry import REGISTRY
from app.server.application import create_app
from app.server.http_transport import OutboundTransport
from app.server.proxy_env import ProxyRules
from app.server.wiring import Dependencies
from tests.authz.conftest import GUEST, pkce
from tests.authz.doc_server import DocumentServer, Reply, document_server
from tests.authz.test_cimd_routes import cimd_config
from tests.fakes.app_factory import make_client
from tests.fakes.clock import FakeClock
from tests.support.forward_proxy import ForwardProxy

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

PUBLIC_ADDRESS = "93.184.215.14"


class Resolver:
    """This server's DNS, as a test wants it: answers per host; counts lookups."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        if host not in self.answers:
            raise OSError(f"unknown host {host}")
        return self.answers[host]


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForwardProxy]:
    forward = ForwardProxy(tmp_path_factory.mktemp("cimd-proxy")).start()
    try:
        yield forward
    finally:
        forward.stop()


@pytest.fixture
def docs() -> Iterator[DocumentServer]:
    with document_server() as server:
        yield server


def _serve_client(docs: DocumentServer, client_id: str) -> None:
    path = urlsplit(client_id).path
    document = {
        "client_id": client_id,
        "client_name": "MCP behind a proxy",
        "redirect_uris": ["http://127.0.0.1:9999/callback"],
    }
    docs.replies[path] = Reply(body=json.dumps(document).encode())


def _authorize(environ: dict[str, str], client_id: str, resolver: Resolver) -> Any:
    app = create_app(
        read_settings(cimd_config([client_id])),
        development=True,
        deps=Dependencies(
            clock=FakeClock(),
            providers=REGISTRY,
            catalog=InMemoryCatalog([CatalogUser(ref=GUEST)]),
            transport=OutboundTransport(environ),
            dns_resolver=resolver,
        ),
    )
    with make_client(app) as client:
        return client.get(
            "/api/auth/v1/authorize",
            params={
                "client_id": client_id,
                "redirect_uri": "http://127.0.0.1:9999/callback",
                "response_type": "code",
                "scope": "openid",
                "state": "st",
                "code_challenge": pkce()[1],
                "code_challenge_method": "S256",
            },
        )


def test_the_document_is_fetched_through_the_proxy(
    proxy: ForwardProxy, docs: DocumentServer
) -> None:
    client_id = docs.client_document("/through-proxy.json")
    response = _authorize({"HTTP_PROXY": proxy.url}, client_id, Resolver({}))
    assert response.status_code == 302, response.text
    assert f"GET {client_id} HTTP/1.1" in proxy.requests()
    assert [path for path, _ in docs.requests] == ["/through-proxy.json"]


def test_no_proxy_hosts_are_fetched_directly_pinned_to_the_checked_addresses(
    proxy: ForwardProxy, tmp_path: Path
) -> None:
    """``docs.example`` exists only in this server's resolver: the fetch can only have
    connected to the address that resolver gave (over TLS under a private CA, trusted
    through NODE_EXTRA_CA_CERTS like every other outbound call), not through the proxy."""
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("docs.example").configure_cert(context)
    before = len(proxy.requests())
    with document_server(tls=context) as tls_docs:
        port = urlsplit(tls_docs.base).port
        client_id = f"https://docs.example:{port}/client.json"
        _serve_client(tls_docs, client_id)
        resolver = Resolver({"docs.example": ["127.0.0.1"]})
        environ = {
            "HTTPS_PROXY": proxy.url,
            "NO_PROXY": "docs.example",
            "NODE_EXTRA_CA_CERTS": str(bundle),
        }
        response = _authorize(environ, client_id, resolver)
        assert response.status_code == 302, response.text
        assert resolver.lookups == ["docs.example"]
        assert tls_docs.requests[0][1]["Host"] == f"docs.example:{port}"
    assert proxy.requests()[before:] == []


def test_an_https_document_goes_through_the_proxys_tunnel(
    proxy: ForwardProxy, tmp_path: Path
) -> None:
    """Client metadata documents are https in practice: a CONNECT tunnel through the proxy,
    TLS end to end with the document's host (under a private CA, trusted through
    NODE_EXTRA_CA_CERTS as every other outbound call)."""
    ca = trustme.CA()
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    with document_server(tls=context) as tls_docs:
        port = urlsplit(tls_docs.base).port
        client_id = f"https://localhost:{port}/tunnel.json"
        _serve_client(tls_docs, client_id)
        environ = {"HTTPS_PROXY": proxy.url, "NODE_EXTRA_CA_CERTS": str(bundle)}
        response = _authorize(environ, client_id, Resolver({}))
        assert response.status_code == 302, response.text
        assert [path for path, _ in tls_docs.requests] == ["/tunnel.json"]
    assert f"CONNECT localhost:{port} HTTP/1.1" in proxy.requests()


async def test_a_checked_host_passes_the_check_and_the_proxy_connects_by_name(
    proxy: ForwardProxy, docs: DocumentServer
) -> None:
    """The check is made on the URL's host with this server's resolver; the proxy then
    resolves the name itself (here to loopback: what it connects to is its to police)."""
    port = urlsplit(docs.base).port
    url = f"http://localhost:{port}/client.json"
    _serve_client(docs, url)
    resolver = Resolver({"localhost": [PUBLIC_ADDRESS]})
    fetched = await fetch_document(
        urlsplit(url), resolver=resolver, check_addresses=True, timeout=5.0, proxy=proxy.url
    )
    assert json.loads(fetched.body)["client_id"] == url
    assert resolver.lookups == ["localhost"]
    assert f"GET {url} HTTP/1.1" in proxy.requests()


@pytest.mark.parametrize("address", ["10.0.0.7", "127.0.0.1", "169.254.169.254"])
async def test_a_private_address_is_refused_before_the_proxy_is_asked(
    proxy: ForwardProxy, docs: DocumentServer, address: str
) -> None:
    port = urlsplit(docs.base).port
    url = f"http://localhost:{port}/client.json"
    _serve_client(docs, url)
    rules = ProxyRules.from_environ({"HTTP_PROXY": proxy.url})
    assert rules.proxy_for(url) == proxy.url
    before = len(proxy.requests())
    with pytest.raises(InputError, match="^Invalid client_id URL$"):
        await fetch_document(
            urlsplit(url),
            resolver=Resolver({"localhost": [PUBLIC_ADDRESS, address]}),
            check_addresses=True,
            proxy=rules.proxy_for(url),
        )
    assert proxy.requests()[before:] == []
    assert docs.requests == []


def test_a_refusing_proxy_is_the_authorization_endpoints_error(docs: DocumentServer) -> None:
    client_id = docs.client_document("/refused.json")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}"
        # Reachable directly: only the proxy can fail this fetch.
        direct = Resolver({"127.0.0.1": ["127.0.0.1"]})
        response = _authorize({"HTTP_PROXY": refused}, client_id, direct)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == {
        "name": "InputError",
        "message": "Failed to fetch client metadata",
    }
    assert docs.requests == []
