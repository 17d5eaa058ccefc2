"""What the real MCP client's tests share: a self-signed loopback certificate (the CIMD
document is served over HTTPS), token storage, and the user who approves consent."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mcp.client.auth import TokenStorage
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthToken

from tests.authz.doc_server import DocumentServer, document_server
from tests.support.server import AuthServer


def certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextlib.contextmanager
def client_document(directory: Path, callback: str) -> Iterator[tuple[Path, DocumentServer, str]]:
    """The MCP client's Client ID Metadata Document on loopback HTTPS (a public client
    with refresh tokens, redirecting to ``callback``): the certificate's path (for the
    server's ``SSL_CERT_FILE``), the document server and the client id."""
    cert, key = certificate(directory)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    with document_server(tls) as docs:
        client_id = docs.client_document(
            "/mcp-client.json",
            client_name="Test MCP client",
            redirect_uris=[callback],
            token_endpoint_auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
        )
        yield cert, docs, client_id


class Storage(TokenStorage):
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Browser:
    """The user: follows the authorize redirect and approves on the consent endpoints
    with a Backstage token, as the app's consent page does."""

    def __init__(self, auth: AuthServer) -> None:
        self.auth = auth
        self.result: AuthorizationCodeResult | None = None
        self.approvals = 0

    async def redirect(self, url: str) -> None:
        async with httpx2.AsyncClient() as client:
            token = (await client.get(f"{self.auth.base_url}/api/auth/guest/refresh")).json()[
                "backstageIdentity"
            ]["token"]
            started = await client.get(url)
            assert started.status_code == 302, started.text
            session_id = started.headers["location"].rsplit("/", 1)[1]
            approved = await client.post(
                f"{self.auth.base_url}/api/auth/v1/sessions/{session_id}/approve",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert approved.status_code == 200, approved.text
        query = parse_qs(urlsplit(approved.json()["redirectUrl"]).query)
        self.result = AuthorizationCodeResult(code=query["code"][0], state=query["state"][0])
        self.approvals += 1

    async def callback(self) -> AuthorizationCodeResult:
        assert self.result is not None
        return self.result
