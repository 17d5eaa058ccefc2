"""A real ``AuthResolverContext`` over an ``InMemoryCatalog``, for provider resolver tests."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

from app.identity.catalog import CatalogUser, InMemoryCatalog
from app.identity.keys import MemoryKeyStore
from app.identity.resolvers import AuthResolverContext
from app.identity.tokens import TokenIssuer
from app.identity.types import BackstageIdentity
from app.identity.user_info import MemoryUserInfoStore
from tests.fakes.clock import FakeClock


def resolver_context(
    users: Sequence[CatalogUser], clock: FakeClock | None = None
) -> AuthResolverContext:
    issuer = TokenIssuer(
        issuer="http://localhost:7007/api/auth",
        key_store=MemoryKeyStore(),
        clock=clock or FakeClock(),
        expiration_seconds=3600,
        user_info=MemoryUserInfoStore(),
    )
    return AuthResolverContext(issuer, InMemoryCatalog(users))


def claims_of(identity: BackstageIdentity) -> dict[str, Any]:
    payload = identity.token.split(".")[1]
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert isinstance(decoded, dict)
    return decoded
