"""A fake Backstage catalog: ``GET /api/catalog/entities/by-query`` over httpx2.MockTransport.

Filters behave as the catalog's search table does: entities are flattened to dotted keys
(``metadata.annotations.github.com/user-login``), keys and values compared lower-cased,
``,`` separating conditions that must all hold, repeated ``filter`` params or'ed.
Pagination hands out an opaque cursor that carries the filter, like the real one.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from typing import Any

import httpx2

TOKEN = "catalog-static-token"


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for item in value:
            yield from _flatten(item, prefix)
    elif value is not None:
        yield prefix.lower(), str(value).lower()


def _matches(entity: Mapping[str, Any], filter_: str) -> bool:
    pairs = set(_flatten({k: v for k, v in entity.items() if k != "relations"}))
    keys = {k for k, _ in pairs}
    for statement in (s.strip() for s in filter_.split(",") if s.strip()):
        key, eq, value = statement.partition("=")
        key = key.strip().lower()
        if eq and (key, value.strip().lower()) not in pairs:
            return False
        if not eq and key not in keys:
            return False
    return True


def user_entity(
    name: str,
    *,
    namespace: str = "default",
    email: str | None = None,
    annotations: Mapping[str, str] | None = None,
    member_of: list[str] | None = None,
    relations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A stitched User entity; ``member_of`` becomes memberOf relations with targetRef."""
    entity: dict[str, Any] = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "User",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
        "spec": {"profile": {"email": email} if email else {}, "memberOf": member_of or []},
    }
    if relations is not None:
        entity["relations"] = relations
    elif member_of is not None:
        entity["relations"] = [{"type": "memberOf", "targetRef": ref} for ref in member_of]
    return entity


class FakeCatalog:
    def __init__(self, entities: list[dict[str, Any]], *, page_size: int = 2) -> None:
        self.entities = entities
        self.page_size = page_size
        self.requests: list[httpx2.Request] = []
        # Set to make the next requests fail: an HTTP status, or an exception to raise.
        self.fail: int | Exception | None = None
        self.body: bytes | None = None  # a raw body to answer with instead
        self.ignore_filters = False

    def transport(self) -> httpx2.MockTransport:
        return httpx2.MockTransport(self.handle)

    def filters(self) -> list[list[str]]:
        """The filter params of each request (empty for cursor requests)."""
        return [r.url.params.get_list("filter") for r in self.requests]

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if isinstance(self.fail, Exception):
            raise self.fail
        if self.fail is not None:
            return httpx2.Response(self.fail, json={"error": {"name": "Error", "message": "x"}})
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return httpx2.Response(401, json={"error": {"name": "AuthenticationError"}})
        if request.method != "GET" or request.url.path != "/api/catalog/entities/by-query":
            return httpx2.Response(404, json={"error": {"name": "NotFoundError"}})
        if self.body is not None:
            return httpx2.Response(200, content=self.body)
        params = request.url.params
        if "cursor" in params:
            state = json.loads(base64.urlsafe_b64decode(params["cursor"]))
            filters, offset = state["filters"], state["offset"]
        else:
            filters, offset = params.get_list("filter"), 0
        limit = min(int(params.get("limit", "20")), self.page_size)
        matching = [
            e
            for e in self.entities
            if self.ignore_filters or not filters or any(_matches(e, f) for f in filters)
        ]
        page = matching[offset : offset + limit]
        page_info: dict[str, str] = {}
        if offset + limit < len(matching):
            cursor = json.dumps({"filters": filters, "offset": offset + limit})
            page_info["nextCursor"] = base64.urlsafe_b64encode(cursor.encode()).decode()
        return httpx2.Response(
            200, json={"items": page, "totalItems": len(matching), "pageInfo": page_info}
        )
