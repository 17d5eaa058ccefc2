"""In-memory storage of the development identity provider (one process; lost on restart).

WSGI requests run on a thread pool, so every access takes the lock.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from app.devidp.models import AuthorizationCode, DevClient, Token

# A sign-in in progress or a forgotten tab must not grow memory without bound.
MAX_CODES = 1000
MAX_TOKENS = 10000
MAX_NONCES = 1000


class MemoryStore:
    def __init__(self, clients: dict[str, DevClient]) -> None:
        self._lock = threading.Lock()
        self.clients = clients
        self._codes: OrderedDict[str, AuthorizationCode] = OrderedDict()
        self._nonces: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._by_access: OrderedDict[str, Token] = OrderedDict()
        self._by_refresh: dict[str, Token] = {}

    # -- authorization codes ---------------------------------------------------------

    def save_code(self, code: AuthorizationCode) -> None:
        with self._lock:
            self._codes[code.code] = code
            if code.nonce:
                self._nonces[(code.client_id, code.nonce)] = None
                _trim(self._nonces, MAX_NONCES)
            _trim(self._codes, MAX_CODES)

    def take_code(self, code: str, client_id: str) -> AuthorizationCode | None:
        """The code, removed: a code is used at most once, whatever the outcome."""
        with self._lock:
            found = self._codes.pop(code, None)
        if found is None or found.client_id != client_id or found.is_expired():
            return None
        return found

    def nonce_seen(self, client_id: str, nonce: str) -> bool:
        with self._lock:
            return (client_id, nonce) in self._nonces

    # -- tokens ----------------------------------------------------------------------

    def save_token(self, token: Token) -> None:
        with self._lock:
            self._by_access[token.access_token] = token
            if token.refresh_token:
                self._by_refresh[token.refresh_token] = token
            while len(self._by_access) > MAX_TOKENS:
                _, old = self._by_access.popitem(last=False)
                if old.refresh_token:
                    self._by_refresh.pop(old.refresh_token, None)
            self._prune(time.time())

    def by_access_token(self, value: str) -> Token | None:
        with self._lock:
            return self._by_access.get(value)

    def by_refresh_token(self, value: str) -> Token | None:
        with self._lock:
            return self._by_refresh.get(value)

    def rotate(self, token: Token) -> None:
        with self._lock:
            token.rotated = True

    def revoke(self, token: Token) -> None:
        with self._lock:
            token.revoked = True

    def revoke_family(self, family: str) -> None:
        with self._lock:
            for token in self._by_access.values():
                if token.family == family:
                    token.revoked = True

    def _prune(self, now: float) -> None:
        dead = [
            t
            for t in self._by_access.values()
            if now >= t.issued_at + t.expires_in and (t.rotated or now >= t.refresh_expires_at)
        ]
        for token in dead:
            self._by_access.pop(token.access_token, None)
            if token.refresh_token:
                self._by_refresh.pop(token.refresh_token, None)


def _trim(items: OrderedDict[Any, Any], limit: int) -> None:
    while len(items) > limit:
        items.popitem(last=False)
