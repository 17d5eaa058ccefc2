"""The user info behind ``/v1/userinfo``, written when a token is issued.

On every refresh the claims are usually the ones written moments ago: writing them again
was a database round trip per request (docs/benchmarks.md). New claims are written before
the token is handed out; unchanged ones are rewritten after ``USER_INFO_REWRITE_SECONDS``
(another instance may have written other claims for the same user in between), by one
request while the others go on. When the database is down, unchanged claims are not a
reason to refuse a token: the write is retried a few seconds later.
"""

from __future__ import annotations

import logging
from typing import Any

from app.core.clock import Clock
from app.core.errors import ServiceUnavailableError
from app.identity.user_info import UserInfoStore

log = logging.getLogger(__name__)

USER_INFO_REWRITE_SECONDS = 60.0
# After a failed rewrite of unchanged claims, the next attempt comes this much later.
REWRITE_RETRY_SECONDS = 5.0
# Users whose last write is remembered (least recently signed in forgotten first).
USER_INFO_REMEMBERED = 10_000


class UserInfoWriter:
    def __init__(self, store: UserInfoStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        # sub -> (claims, when written); in least-recently-used order.
        self._written: dict[str, tuple[dict[str, Any], float]] = {}

    async def write(self, sub: str, claims: dict[str, Any]) -> None:
        """Store ``claims`` for ``sub`` unless the same claims were stored moments ago."""
        written = self._written
        last = written.pop(sub, None)  # re-inserted last: the dict is in LRU order
        now = self._clock.now()
        if last is not None and last[0] == claims:
            if now - last[1] <= USER_INFO_REWRITE_SECONDS:
                written[sub] = last
                return
            # The row holds these claims already: one request refreshes it while the
            # others go on (all of them at once queued on the database, p99 0.5 s).
            written[sub] = (claims, now)
            try:
                await self._store.put(sub, claims)
            except ServiceUnavailableError as exc:
                # The database is down, but it already holds these claims: sign the user in
                # and try the write again shortly (an outage must not sign known users out).
                written[sub] = (claims, now - USER_INFO_REWRITE_SECONDS + REWRITE_RETRY_SECONDS)
                log.warning("user info of %s not rewritten, retried later: %s", sub, exc.message)
            except BaseException:
                if written.get(sub) == (claims, now):
                    del written[sub]
                raise
        else:
            # New claims: nobody gets a token before they are stored (/v1/userinfo).
            await self._store.put(sub, claims)
            written[sub] = (claims, now)
        while len(written) > USER_INFO_REMEMBERED:
            del written[next(iter(written))]
