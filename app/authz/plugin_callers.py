"""Callers presenting plugin tokens, verified as Backstage's ``DefaultPluginTokenHandler``
and ``DefaultAuthService.authenticate`` do.

A token whose header says ``typ: vnd.backstage.plugin`` is a plugin token: its ``sub``
must match ``^[a-z0-9_-]+$`` (case-insensitive); its signature is checked against the
calling plugin's keys at ``<discovery internal URL of sub>/.backstage/auth/v1/jwks.json``;
``aud`` must be ``auth``; ``iat``, ``exp``, ``sub``, ``aud`` are required. With ``obo``,
the limited user token must be one of ours (our user keys) and the caller is that user,
the plugin its actor.

Unlike Backstage, the key clients are bounded: a flood of tokens with made-up ``sub``
values must not turn into a JWKS fetch per value. A plugin whose token once verified keeps
its client (``_proven``, capped); clients for plugins not yet proven live in a small LRU,
new ones are created at most ``NEW_CLIENT_BURST`` per ``NEW_CLIENT_WINDOW_SECONDS``, and a
plugin whose keys could not be fetched is refused without a fetch for
``FAILURE_TTL_SECONDS``. Each client refetches only on an unknown ``kid``, at most once
per 30 seconds (``RemoteJwks``).
"""

from __future__ import annotations

import collections
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jws import extract_compact

from app.config.discovery import OWN_PLUGIN_ID, Discovery
from app.core.clock import Clock
from app.core.errors import AuthenticationError, ServiceUnavailableError
from app.identity.plugin_tokens import PLUGIN_JWKS_PATH, PLUGIN_TOKEN_TYPE
from app.identity.tokens import TokenIssuer
from app.identity.user_tokens import verify_user_token
from app.providers.remote_keys import FetchLimiter, OutboundHttp, RemoteJwks

log = logging.getLogger(__name__)

_PLUGIN_ID = re.compile(r"^[a-z0-9_-]+$", re.I)
_ALGORITHMS = ["ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
MAX_PROVEN_CLIENTS = 64
MAX_UNPROVEN_CLIENTS = 16
NEW_CLIENT_BURST = 10
NEW_CLIENT_WINDOW_SECONDS = 60.0
FAILURE_TTL_SECONDS = 30.0
MAX_FAILURES_REMEMBERED = 256


@dataclass(frozen=True)
class PluginCaller:
    """``subject`` is ``plugin:<id>``; ``user`` the entity ref of the ``obo`` user."""

    subject: str
    user: str | None = None
    limited_user_token: str | None = None


def _no_jwks(plugin_id: str) -> AuthenticationError:
    return AuthenticationError(
        f"Received a plugin token where the source '{plugin_id}' plugin unexpectedly does not "
        "have a JWKS endpoint. The target plugin needs to be migrated to be installed in an "
        "app using the new backend system."
    )


class PluginCallers:
    def __init__(
        self,
        discovery: Discovery,
        http: OutboundHttp,
        clock: Clock,
        user_tokens: TokenIssuer,
        *,
        own_plugin_id: str = OWN_PLUGIN_ID,
    ) -> None:
        self._discovery = discovery
        self._http = http
        self._clock = clock
        self._user_tokens = user_tokens
        self._own = own_plugin_id
        self._proven: collections.OrderedDict[str, RemoteJwks] = collections.OrderedDict()
        self._unproven: collections.OrderedDict[str, RemoteJwks] = collections.OrderedDict()
        self._failed: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._new_clients = FetchLimiter(
            clock, interval_seconds=NEW_CLIENT_WINDOW_SECONDS, burst=NEW_CLIENT_BURST
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def client_count(self) -> int:
        return len(self._proven) + len(self._unproven)

    async def verify(self, token: str) -> PluginCaller | None:
        """The caller of a valid plugin token; None when the token is not a plugin token.

        Raises:
            AuthenticationError: a plugin token that fails verification (Backstage's
                messages).
        """
        try:
            compact = extract_compact(token.encode())
            header = compact.protected
            if header.get("typ") != PLUGIN_TOKEN_TYPE:
                return None
            claims = json.loads(compact.payload)
        except (JoseError, ValueError, UnicodeError):
            return None
        if not isinstance(claims, dict):
            raise AuthenticationError("Failed plugin token verification")
        plugin_id = "" if claims.get("sub") is None else str(claims.get("sub"))
        if not plugin_id:
            raise AuthenticationError("Invalid plugin token: missing subject")
        if not _PLUGIN_ID.match(plugin_id):
            raise AuthenticationError("Invalid plugin token: forbidden subject format")
        verified = await self._verify_signed(token, plugin_id, header.get("kid"))
        obo = verified.get("obo")
        if obo is None:
            return PluginCaller(f"plugin:{plugin_id}")
        return await self._on_behalf_of(plugin_id, obo, verified)

    async def _verify_signed(self, token: str, plugin_id: str, kid: Any) -> dict[str, Any]:
        client = self._client(plugin_id)
        try:
            key = await client.key_for(kid if isinstance(kid, str) else None)
        except ServiceUnavailableError as exc:
            self._forget(plugin_id, failed=True)
            log.warning("plugin %s: its keys could not be fetched: %s", plugin_id, exc.message)
            raise _no_jwks(plugin_id) from None
        failed = AuthenticationError("Failed plugin token verification")
        if key is None:
            raise failed
        try:
            decoded = jwt.decode(token, key, algorithms=_ALGORITHMS)
            jwt.JWTClaimsRegistry(
                now=int(self._clock.now()),
                iat={"essential": True},
                exp={"essential": True},
                sub={"essential": True},
                aud={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            log.warning("Failed to verify incoming plugin token: %s", exc)
            raise failed from None
        aud = decoded.claims.get("aud")
        if not (aud == self._own or (isinstance(aud, list) and self._own in aud)):
            log.warning("Failed to verify incoming plugin token: audience %r", aud)
            raise failed
        self._prove(plugin_id, client)
        return dict(decoded.claims)

    async def _on_behalf_of(self, plugin_id: str, obo: Any, claims: dict[str, Any]) -> PluginCaller:
        invalid = AuthenticationError("Invalid user token in plugin token obo claim")
        if not isinstance(obo, str):
            raise invalid
        try:
            user = await verify_user_token(self._user_tokens, self._clock, obo)
        except AuthenticationError:
            raise AuthenticationError("Failed user token verification") from None
        # Backstage issues plugin tokens that end no later than their user token; one that
        # outlives it carries a user token it was not made for.
        if not isinstance(user.get("exp"), int) or claims["exp"] > user["exp"]:
            raise invalid
        return PluginCaller(f"plugin:{plugin_id}", str(user["sub"]), obo)

    def _client(self, plugin_id: str) -> RemoteJwks:
        client = self._proven.get(plugin_id)
        if client is not None:
            self._proven.move_to_end(plugin_id)
            return client
        client = self._unproven.get(plugin_id)
        if client is not None:
            self._unproven.move_to_end(plugin_id)
            return client
        failed_at = self._failed.get(plugin_id)
        if failed_at is not None and self._clock.now() - failed_at < FAILURE_TTL_SECONDS:
            raise _no_jwks(plugin_id)
        if not self._new_clients.try_acquire():
            log.warning("plugin %s: refused, too many new plugin key clients", plugin_id)
            raise _no_jwks(plugin_id)
        client = RemoteJwks(
            url=f"{self._discovery.internal(plugin_id).rstrip('/')}{PLUGIN_JWKS_PATH}",
            http=self._http,
            clock=self._clock,
            what=f"plugin keys of '{plugin_id}'",
        )
        self._unproven[plugin_id] = client
        if len(self._unproven) > MAX_UNPROVEN_CLIENTS:
            self._unproven.popitem(last=False)
        return client

    def _prove(self, plugin_id: str, client: RemoteJwks) -> None:
        if plugin_id in self._proven:
            return
        self._unproven.pop(plugin_id, None)
        self._proven[plugin_id] = client
        if len(self._proven) > MAX_PROVEN_CLIENTS:
            self._proven.popitem(last=False)

    def _forget(self, plugin_id: str, *, failed: bool) -> None:
        self._unproven.pop(plugin_id, None)
        if failed and plugin_id not in self._proven:
            self._failed[plugin_id] = self._clock.now()
            self._failed.move_to_end(plugin_id)
            if len(self._failed) > MAX_FAILURES_REMEMBERED:
                self._failed.popitem(last=False)
