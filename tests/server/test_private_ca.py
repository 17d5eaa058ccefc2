"""Private certificate authorities: an identity provider whose certificate a private CA
(trustme) issued is refused with the default trust, with an error naming the host and the
bundle, and accepted with ``NODE_EXTRA_CA_CERTS`` (Node's meaning: added to the default
trust, which stays loaded)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import certifi
import httpx2
import pytest
import trustme

from app.config.settings import read_settings
from app.core.clock import SystemClock
from app.server.application import create_app
from app.server.http_transport import OutboundTransport
from app.server.trust import trust_from_environ
from app.server.wiring import Dependencies
from tests.fakes.app_factory import APP_BASE_URL, BACKEND_BASE_URL, make_client
from tests.support.tls_server import tls_metadata_server


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "corporate-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
async def idp(ca: trustme.CA, anyio_backend: str) -> AsyncIterator[str]:
    """An HTTPS 'identity provider' on localhost with a certificate from the private CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"https://localhost:{port}/.well-known/openid-configuration"


async def _get(url: str, environ: dict[str, str]) -> httpx2.Response:
    async with httpx2.AsyncClient(transport=OutboundTransport(environ), timeout=5.0) as client:
        return await client.get(url)


@pytest.mark.anyio
async def test_refused_without_the_bundle_with_the_host_and_bundle_named(idp: str) -> None:
    with pytest.raises(httpx2.ConnectError) as caught:
        await _get(idp, {})
    message = str(caught.value)
    assert message.startswith("TLS certificate of localhost not trusted (")
    assert f"trusted: the default bundle ({certifi.where()})" in message


@pytest.mark.anyio
async def test_accepted_with_node_extra_ca_certs(idp: str, ca_file: str) -> None:
    response = await _get(idp, {"NODE_EXTRA_CA_CERTS": ca_file})
    assert response.status_code == 200


def test_node_extra_ca_certs_adds_to_the_default_trust(ca_file: str) -> None:
    default = trust_from_environ({}).context.cert_store_stats()["x509_ca"]
    extra = trust_from_environ({"NODE_EXTRA_CA_CERTS": ca_file})
    # Every public root is still there, plus the private one.
    assert default > 100
    assert extra.context.cert_store_stats()["x509_ca"] == default + 1
    assert extra.description.endswith(f"plus NODE_EXTRA_CA_CERTS={ca_file}")


def test_ssl_cert_file_replaces_the_default(ca_file: str) -> None:
    trust = trust_from_environ({"SSL_CERT_FILE": ca_file, "NODE_EXTRA_CA_CERTS": ca_file})
    assert trust.context.cert_store_stats()["x509_ca"] == 1
    assert trust.description.startswith(f"SSL_CERT_FILE={ca_file}")


def test_an_unreadable_extra_bundle_is_a_warning_as_in_node(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = str(tmp_path / "nope.pem")
    with caplog.at_level(logging.WARNING, logger="app.server.trust"):
        trust = trust_from_environ({"NODE_EXTRA_CA_CERTS": missing})
    assert trust.description.startswith("the default bundle")
    assert f"NODE_EXTRA_CA_CERTS={missing} could not be read" in caplog.text


@pytest.fixture
def threaded_idp(ca: trustme.CA) -> Iterator[str]:
    """The same HTTPS identity provider in a thread (the app's test client has its own loop)."""

    with tls_metadata_server(ca) as url:
        yield url


def _start(metadata_url: str, environ: dict[str, str]) -> httpx2.Response:
    settings = read_settings(
        {
            "app": {"baseUrl": APP_BASE_URL},
            "backend": {"baseUrl": BACKEND_BASE_URL},
            "auth": {
                "session": {"secret": "s"},
                "providers": {
                    "oidc": {
                        "development": {
                            "metadataUrl": metadata_url,
                            "clientId": "a",
                            "clientSecret": "b",
                        }
                    }
                },
            },
        }
    )
    app = create_app(
        settings,
        development=True,
        deps=Dependencies(clock=SystemClock(), transport=OutboundTransport(environ)),
    )
    with make_client(app) as client:
        return client.get("/api/auth/oidc/start", params={"env": "development"})


def test_sign_in_error_names_the_host_and_the_bundle(threaded_idp: str, ca_file: str) -> None:
    refused = _start(threaded_idp, {})
    assert refused.status_code == 503
    message = refused.json()["error"]["message"]
    assert "TLS certificate of localhost not trusted" in message
    assert f"trusted: the default bundle ({certifi.where()})" in message
    # With the private CA added, the TLS handshake succeeds: discovery reads the document
    # (this one is empty, so the next complaint is about its content).
    trusted = _start(threaded_idp, {"NODE_EXTRA_CA_CERTS": ca_file})
    assert "not trusted" not in trusted.json()["error"]["message"]
    assert "missing" in trusted.json()["error"]["message"]
