"""The metadata document cache: one fetch per client id at a time, max-age within
limits, no-store, the entry and byte bounds."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from app.authz import cimd
from app.authz.cimd import ClientMetadataDocuments
from app.config.client_metadata import ClientMetadataSettings
from tests.authz.doc_server import DocumentServer, Reply, document_server
from tests.fakes.clock import FakeClock

pytestmark = pytest.mark.anyio


@pytest.fixture
def docs() -> Iterator[DocumentServer]:
    with document_server() as server:
        yield server


def _documents(docs: DocumentServer, clock: FakeClock) -> ClientMetadataDocuments:
    return ClientMetadataDocuments(
        ClientMetadataSettings(enabled=True, client_id_patterns=(f"{docs.base}/*",)),
        auth_base_url="http://localhost:7007/api/auth",
        clock=clock,
        development=True,
    )


async def test_concurrent_callers_share_one_fetch(docs: DocumentServer) -> None:
    client_id = docs.client_document()
    docs.replies["/client.json"].delay = 0.3
    documents = _documents(docs, FakeClock())

    async def many() -> list[str]:
        found = await asyncio.gather(*(documents.resolve(client_id) for _ in range(10)))
        return [f.client_name for f in found]

    assert await many() == ["Test MCP"] * 10
    assert len(docs.requests) == 1


@pytest.mark.parametrize(
    ("header", "fresh_after", "stale_after"),
    [
        ("max-age=60", 59, 61),
        ("max-age=999999", cimd.MAX_TTL - 1, cimd.MAX_TTL + 1),
        (None, cimd.DEFAULT_TTL - 1, cimd.DEFAULT_TTL + 1),
        ("no-store", None, 0),
        ("private, no-cache", None, 0),
    ],
)
async def test_max_age_within_limits(
    docs: DocumentServer, header: str | None, fresh_after: int | None, stale_after: int
) -> None:
    client_id = docs.client_document()
    if header:
        docs.replies["/client.json"].headers["Cache-Control"] = header
    clock = FakeClock()
    documents = _documents(docs, clock)
    await documents.resolve(client_id)
    if fresh_after is not None:
        clock.advance(fresh_after)
        await documents.resolve(client_id)
        assert len(docs.requests) == 1
        clock.advance(stale_after - fresh_after)
    await documents.resolve(client_id)
    assert len(docs.requests) == 2


async def test_the_cache_is_bounded_in_entries_and_bytes(
    docs: DocumentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cimd, "MAX_ENTRIES", 3)
    ids = [docs.client_document(f"/c{i}.json") for i in range(5)]
    documents = _documents(docs, FakeClock())
    for client_id in ids:
        await documents.resolve(client_id)
    await documents.resolve(ids[-1])  # still cached
    await documents.resolve(ids[0])  # evicted: fetched again
    assert len(docs.requests) == 6

    monkeypatch.setattr(cimd, "MAX_ENTRIES", 1000)
    monkeypatch.setattr(cimd, "MAX_BYTES", 600)
    docs.replies["/big.json"] = Reply(body=b"")
    big = docs.client_document("/big.json", client_name="x" * 400)
    documents = _documents(docs, FakeClock())
    await documents.resolve(ids[1])
    await documents.resolve(big)
    await documents.resolve(ids[1])  # pushed out by the big one
    assert [p for p, _ in docs.requests[-3:]] == ["/c1.json", "/big.json", "/c1.json"]


async def test_a_caller_that_goes_away_does_not_cancel_the_fetch_for_others(
    docs: DocumentServer,
) -> None:
    client_id = docs.client_document()
    docs.replies["/client.json"].delay = 0.3
    documents = _documents(docs, FakeClock())

    async def scenario() -> str:
        first = asyncio.create_task(documents.resolve(client_id))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(documents.resolve(client_id))
        await asyncio.sleep(0.05)
        first.cancel()
        return (await second).client_name

    assert await scenario() == "Test MCP"
    await documents.resolve(client_id)  # cached by the fetch the first caller began
    assert len(docs.requests) == 1
