"""Users from a running Backstage catalog, over its REST API.

``GET <baseUrl>/api/catalog/entities/by-query?filter=kind=user,...`` (and
``/entities/by-name/...`` for a whole entity) with ``Authorization: Bearer <token>``: a
static token (on the Backstage side, a ``backend.auth.externalAccess`` entry of ``type:
static``) or, found through discovery, a fresh plugin token of ours on every request.
The response is ``{items, totalItems, pageInfo: {nextCursor?}}``; later pages are
fetched with ``cursor=<nextCursor>`` alone, as ``@backstage/catalog-client`` does.
Ownership comes from the ``memberOf`` relations of each user (``spec.memberOf`` when the
entity carries no relations).

Filter values cannot be escaped in Backstage's filter syntax (a ``,`` splits conditions),
so results are checked again here; the catalog only ever narrows the candidates.
Results, including empty ones, are cached for ``cache_ttl_seconds`` by the injected clock.
Failures raise ``ServiceUnavailableError`` and are not cached.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

import httpx2

from app.core.clock import Clock
from app.core.errors import ServiceUnavailableError
from app.core.timeouts import OUTBOUND_TIMEOUT_SECONDS
from app.identity.catalog import CatalogUser, InMemoryCatalog
from app.identity.entity_ref import canonical_entity_ref, parse_entity_ref, stringify_entity_ref

log = logging.getLogger(__name__)

DEFAULT_CACHE_TTL_SECONDS = 10.0
# A cached answer keeps serving this long past its TTL while the catalog is failing.
DEFAULT_STALE_SECONDS = 300.0
PAGE_LIMIT = 100
MAX_PAGES = 100
MAX_CACHE_ENTRIES = 1000
_FIELDS = ",".join(
    (
        "kind",
        "metadata.name",
        "metadata.namespace",
        "metadata.annotations",
        "spec.profile.email",
        "spec.memberOf",
        "relations",
    )
)

_CacheKey = tuple[str, ...]


def _relation_target(relation: Mapping[str, Any]) -> str | None:
    target_ref = relation.get("targetRef")
    if isinstance(target_ref, str):
        return target_ref
    target = relation.get("target")  # catalogs from before targetRef
    if isinstance(target, Mapping) and all(
        isinstance(target.get(k), str) for k in ("kind", "namespace", "name")
    ):
        return stringify_entity_ref(target["kind"], target["namespace"], target["name"])
    return None


def user_from_entity(entity: Mapping[str, Any]) -> CatalogUser | None:
    """A ``CatalogUser`` from a stitched catalog entity; None when it is not a usable user."""
    metadata = entity.get("metadata")
    raw_spec = entity.get("spec")
    spec: Mapping[str, Any] = raw_spec if isinstance(raw_spec, Mapping) else {}
    if str(entity.get("kind", "")).lower() != "user":
        return None
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("name"), str):
        return None
    namespace = metadata.get("namespace")
    namespace = namespace if isinstance(namespace, str) and namespace else "default"
    annotations = metadata.get("annotations")
    profile = spec.get("profile")
    email = profile.get("email") if isinstance(profile, Mapping) else None
    relations = entity.get("relations")
    member_of: list[str] = []
    if isinstance(relations, list):
        for relation in relations:
            if isinstance(relation, Mapping) and relation.get("type") == "memberOf":
                target = _relation_target(relation)
                if target is not None:
                    member_of.append(target)
    elif isinstance(spec.get("memberOf"), list):
        for ref in spec["memberOf"]:
            if isinstance(ref, str):
                try:
                    parts = parse_entity_ref(ref, default_kind="group", default_namespace=namespace)
                except ValueError:
                    continue
                member_of.append(stringify_entity_ref(*parts))
    return CatalogUser(
        ref=stringify_entity_ref("user", namespace, metadata["name"]),
        email=email if isinstance(email, str) and email else None,
        annotations={
            k: v
            for k, v in (annotations.items() if isinstance(annotations, Mapping) else ())
            if isinstance(k, str) and isinstance(v, str)
        },
        member_of=tuple(dict.fromkeys(member_of)),
    )


class RemoteCatalog:
    """The ``Catalog`` protocol over a Backstage catalog's REST API."""

    def __init__(
        self,
        base_url: str,
        token: str | Callable[[], Awaitable[str]],
        *,
        clock: Clock,
        transport: httpx2.AsyncBaseTransport | None = None,
        cache_ttl_seconds: float = DEFAULT_CACHE_TTL_SECONDS,
        timeout_seconds: float = OUTBOUND_TIMEOUT_SECONDS,
        plugin_base_url: str | None = None,
        stale_seconds: float = DEFAULT_STALE_SECONDS,
    ) -> None:
        """``token``: a static token, or a function making one per request (our plugin
        tokens, ``aud: catalog``). ``plugin_base_url``: the catalog plugin's own base URL
        (from discovery) instead of ``<base_url>/api/catalog``."""
        self.base_url = base_url.rstrip("/")
        self._clock = clock
        self._ttl = cache_ttl_seconds
        self._stale = stale_seconds
        self._timeout = timeout_seconds
        self._token = token
        self._cache: OrderedDict[_CacheKey, tuple[float, list[CatalogUser]]] = OrderedDict()
        static = {"Authorization": f"Bearer {token}"} if isinstance(token, str) else {}
        self._client = httpx2.AsyncClient(
            base_url=(plugin_base_url or f"{self.base_url}/api/catalog").rstrip("/"),
            headers={**static, "Accept": "application/json"},
            timeout=httpx2.Timeout(timeout_seconds),
            transport=transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- the Catalog protocol -----------------------------------------------------------

    async def get_user(self, ref: str) -> CatalogUser | None:
        try:
            kind, namespace, name = parse_entity_ref(canonical_entity_ref(ref))
        except ValueError:
            return None
        if kind != "user":
            return None
        users = await self._query(
            ("ref", namespace.lower(), name.lower()),
            [("metadata.namespace", namespace), ("metadata.name", name)],
        )
        return await InMemoryCatalog(users).get_user(ref)

    async def find_users(
        self,
        *,
        annotations: Mapping[str, str] | None = None,
        email: str | None = None,
    ) -> list[CatalogUser]:
        conditions = [(f"metadata.annotations.{k}", v) for k, v in (annotations or {}).items()]
        if email is not None:
            conditions.append(("spec.profile.email", email))
        key = ("find", *sorted(f"{k.lower()}={v.lower()}" for k, v in conditions))
        users = await self._query(key, conditions)
        return await InMemoryCatalog(users).find_users(annotations=annotations, email=email)

    async def get_entity(self, ref: str) -> Mapping[str, Any] | None:
        """The whole entity (not the fields sign-in asks for); not cached."""
        try:
            kind, namespace, name = parse_entity_ref(canonical_entity_ref(ref))
        except ValueError:
            return None
        where = f"the catalog at {self.base_url}"
        try:
            path = "/".join(quote(part, safe="") for part in (kind, namespace, name))
            response = await self._client.get(
                f"/entities/by-name/{path}", headers=await self._token_header()
            )
        except httpx2.HTTPError as exc:
            raise ServiceUnavailableError(f"Entity lookup failed, could not reach {where}") from exc
        if response.status_code == 404:
            return None
        self._check_token_accepted(response, "Entity lookup")
        try:
            body = response.json() if response.status_code == 200 else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ServiceUnavailableError(
                f"Entity lookup failed, {where} answered HTTP {response.status_code}"
            )
        return body

    # -- HTTP ---------------------------------------------------------------------------

    async def _query(self, key: _CacheKey, conditions: list[tuple[str, str]]) -> list[CatalogUser]:
        now = self._clock.now()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            users = await self._fetch(conditions)
        except ServiceUnavailableError as exc:
            # Known users keep signing in through a brief outage of the catalog.
            if cached is not None and now < cached[0] + self._stale:
                log.warning("serving cached users; %s", exc.message)
                return cached[1]
            raise
        self._remember(key, users, now)
        return users

    async def _fetch(self, conditions: list[tuple[str, str]]) -> list[CatalogUser]:
        filter_ = ",".join(["kind=user", *(f"{k}={v}" for k, v in conditions)])
        # One deadline for the whole lookup: its pages must not each take the timeout.
        try:
            async with asyncio.timeout(self._timeout) as scope:
                users = await self._pages(filter_)
        except TimeoutError as exc:
            if not scope.expired():
                raise
            raise ServiceUnavailableError(
                f"User lookup failed, the catalog at {self.base_url} did not answer within "
                f"{self._timeout:g} seconds",
                exc,
            ) from exc
        return users

    async def _pages(self, filter_: str) -> list[CatalogUser]:
        params: dict[str, str | int] = {"filter": filter_, "fields": _FIELDS, "limit": PAGE_LIMIT}
        users: list[CatalogUser] = []
        for _ in range(MAX_PAGES):
            page = await self._get_page(params)
            for item in page["items"]:
                user = user_from_entity(item) if isinstance(item, Mapping) else None
                if user is not None:
                    users.append(user)
            cursor = (page.get("pageInfo") or {}).get("nextCursor")
            if not isinstance(cursor, str) or not cursor:
                break
            params = {"cursor": cursor, "fields": _FIELDS, "limit": PAGE_LIMIT}
        else:
            log.warning("catalog at %s: stopped after %d pages", self.base_url, MAX_PAGES)
        return users

    def _remember(self, key: _CacheKey, users: list[CatalogUser], now: float) -> None:
        if self._ttl <= 0:
            return
        self._cache.pop(key, None)
        self._cache[key] = (now + self._ttl, users)
        while len(self._cache) > MAX_CACHE_ENTRIES:
            self._cache.popitem(last=False)

    async def _token_header(self) -> dict[str, str]:
        """A fresh plugin token per request (a static token is a client default header)."""
        if isinstance(self._token, str):
            return {}
        return {"Authorization": f"Bearer {await self._token()}"}

    def _check_token_accepted(self, response: httpx2.Response, what: str) -> None:
        if response.status_code not in (401, 403):
            return
        raise ServiceUnavailableError(
            f"{what} failed, the catalog at {self.base_url} refused the token "
            f"(HTTP {response.status_code}); "
            + (
                "check auth.catalog.remote.token against the catalog's "
                "backend.auth.externalAccess static tokens"
                if isinstance(self._token, str)
                else "the catalog must reach our plugin keys at <discovery URL of auth>"
                "/.backstage/auth/v1/jwks.json"
            )
        )

    async def _get_page(self, params: Mapping[str, str | int]) -> Mapping[str, Any]:
        where = f"the catalog at {self.base_url}"
        try:
            response = await self._client.get(
                "/entities/by-query", params=params, headers=await self._token_header()
            )
        except httpx2.TimeoutException as exc:
            raise ServiceUnavailableError(
                f"User lookup failed, {where} did not answer within {self._timeout:g} seconds",
                exc,
            ) from exc
        except httpx2.HTTPError as exc:
            raise ServiceUnavailableError(
                f"User lookup failed, could not reach {where}", exc
            ) from exc
        self._check_token_accepted(response, "User lookup")
        if response.status_code != 200:
            raise ServiceUnavailableError(
                f"User lookup failed, {where} answered HTTP {response.status_code}"
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("items"), list)
            or not isinstance(body.get("pageInfo") or {}, dict)
        ):
            raise ServiceUnavailableError(
                f"User lookup failed, {where} returned an unexpected response "
                "(is baseUrl the Backstage backend's base URL?)"
            )
        return body
