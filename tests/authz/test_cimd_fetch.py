"""The metadata fetch against a loopback server: limits, redirects, the address check
and the pinned connection (no second lookup, so no DNS rebinding)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from app.authz.cimd_fetch import MAX_RESPONSE_BYTES, fetch_document, is_public, parse_document
from app.core.errors import InputError
from tests.authz.doc_server import DocumentServer, Reply, document_server

pytestmark = pytest.mark.anyio


class Resolver:
    """Answers each lookup with the next list of addresses; counts lookups."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return self.answers[min(len(self.lookups), len(self.answers)) - 1]


@pytest.fixture
def docs() -> Iterator[DocumentServer]:
    with document_server() as server:
        yield server


def _named(docs: DocumentServer, path: str, host: str = "docs.example") -> str:
    port = urlsplit(docs.base).port
    return f"http://{host}:{port}{path}"


def fetch(url: str, resolver: Resolver, *, check: bool, timeout: float = 5.0) -> bytes:
    return asyncio.run(
        fetch_document(urlsplit(url), resolver=resolver, check_addresses=check, timeout=timeout)
    ).body


def test_connects_to_the_resolved_address_with_the_original_host(docs: DocumentServer) -> None:
    docs.document("/client.json", {"client_id": "x"})
    resolver = Resolver(["127.0.0.1"])
    body = fetch(_named(docs, "/client.json"), resolver, check=False)
    assert parse_document(body) == {"client_id": "x"}
    path, headers = docs.requests[0]
    assert headers["Host"].startswith("docs.example:")
    assert headers["Accept"] == "application/json"
    assert resolver.lookups == ["docs.example"]


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1"])
def test_a_checked_name_with_a_non_public_address_is_refused(
    docs: DocumentServer, address: str
) -> None:
    docs.document("/client.json", {})
    with pytest.raises(InputError, match="^Invalid client_id URL$"):
        fetch(_named(docs, "/client.json"), Resolver([address]), check=True)
    assert docs.requests == []


def test_every_address_of_the_name_is_checked(docs: DocumentServer) -> None:
    with pytest.raises(InputError, match="^Invalid client_id URL$"):
        fetch(_named(docs, "/c.json"), Resolver(["93.184.215.14", "10.0.0.1"]), check=True)


def test_no_rebinding_the_checked_address_is_the_one_connected_to(
    docs: DocumentServer,
) -> None:
    """A name that answers a public address first and loopback second: the fetch must not
    look it up again (it would reach the loopback server)."""
    docs.document("/client.json", {"client_id": "x"})
    resolver = Resolver(["93.184.215.14"], ["127.0.0.1"])
    with pytest.raises(InputError, match="^Failed to fetch client metadata$"):
        fetch(_named(docs, "/client.json"), resolver, check=True, timeout=1.0)
    assert resolver.lookups == ["docs.example"]
    assert docs.requests == []


async def test_a_name_that_does_not_resolve_fails(docs: DocumentServer) -> None:
    class Failing:
        async def __call__(self, host: str, port: int) -> list[str]:
            raise OSError("no such name")

    with pytest.raises(InputError, match="^Failed to fetch client metadata$"):
        await fetch_document(urlsplit("https://nowhere.example/c.json"), resolver=Failing())


def test_redirects_are_not_followed(docs: DocumentServer) -> None:
    docs.document("/target.json", {"client_id": "x"})
    docs.replies["/client.json"] = Reply(status=302, headers={"Location": "/target.json"})
    with pytest.raises(InputError, match="^Failed to fetch client metadata$"):
        fetch(docs.url("/client.json"), Resolver(["127.0.0.1"]), check=False)
    assert [p for p, _ in docs.requests] == ["/client.json"]


@pytest.mark.parametrize("status", [404, 500, 403, 304])
def test_a_failed_answer_fails(docs: DocumentServer, status: int) -> None:
    docs.replies["/c.json"] = Reply(status=status, body=b"{}")
    with pytest.raises(InputError, match="^Failed to fetch client metadata$"):
        fetch(docs.url("/c.json"), Resolver(["127.0.0.1"]), check=False)


def test_a_large_declared_length_is_refused(docs: DocumentServer) -> None:
    docs.replies["/c.json"] = Reply(body=b"{" + b" " * MAX_RESPONSE_BYTES + b"}")
    with pytest.raises(InputError, match="^Client metadata document too large$"):
        fetch(docs.url("/c.json"), Resolver(["127.0.0.1"]), check=False)


def test_a_large_body_without_a_length_is_refused(docs: DocumentServer) -> None:
    body = b"[" + b"1," * MAX_RESPONSE_BYTES + b"1]"
    docs.replies["/c.json"] = Reply(body=body, send_length=False)
    with pytest.raises(InputError, match="^Client metadata document too large$"):
        fetch(docs.url("/c.json"), Resolver(["127.0.0.1"]), check=False)


def test_a_slow_server_times_out(docs: DocumentServer) -> None:
    docs.replies["/c.json"] = Reply(body=b"{}", delay=1.5)
    with pytest.raises(InputError, match="^Failed to fetch client metadata$"):
        fetch(docs.url("/c.json"), Resolver(["127.0.0.1"]), check=False, timeout=0.5)


@pytest.mark.parametrize("body", [b"not json", b"null", b"[1]", b"\xff\xfe"])
def test_a_body_that_is_no_object_is_refused(body: bytes) -> None:
    with pytest.raises(InputError, match="^Invalid client metadata document$"):
        parse_document(body)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),
        ("169.254.169.254", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:93.184.215.14", False),
        ("not an address", False),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public(address) is public
