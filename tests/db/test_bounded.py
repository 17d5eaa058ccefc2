"""app.db.errors.bounded: a database operation's deadline holds even when cancelling the
operation takes long (psycopg asks the server to cancel a query first: up to 10 s more
against a frozen PostgreSQL)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import OperationalError

from app.core.errors import ServiceUnavailableError
from app.db.errors import bounded

pytestmark = pytest.mark.anyio


async def test_the_deadline_holds_while_the_operation_unwinds_slowly() -> None:
    unwound = asyncio.Event()

    async def frozen_query() -> None:
        try:
            await asyncio.Event().wait()  # the server never answers
        finally:
            # The driver's cancel request to a frozen server waits out its own timeout.
            await asyncio.sleep(5)
            unwound.set()

    with pytest.raises(ServiceUnavailableError, match="did not answer within 0.1s"):
        # 2 s: twenty times the deadline, and well under the 5 s the unwinding takes.
        await asyncio.wait_for(bounded("Key store", frozen_query, timeout_seconds=0.1), timeout=2)
    assert not unwound.is_set()


async def test_driver_errors_are_503s_naming_what_failed() -> None:
    async def refused() -> None:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))

    with pytest.raises(ServiceUnavailableError, match="^Key store unavailable: "):
        await bounded("Key store", refused)


async def test_a_result_comes_back() -> None:
    async def answer() -> int:
        return 42

    assert await bounded("Key store", answer) == 42
