"""The catalog rule: auth.catalog.remote wins; a config whose discovery.endpoints names
auth (a shared Backstage app-config.yaml) uses the real catalog through discovery with our
plugin tokens and never reads catalog.locations; otherwise the file locations. Known users
are served from the cache while the catalog is briefly down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from app.config.discovery import read_discovery
from app.identity.catalog_config import catalog_from_config, describe_catalog
from app.identity.file_catalog import FileCatalog
from app.identity.plugin_keys import DatabasePluginKeys, MemoryPublicKeyRows
from app.identity.plugin_tokens import PluginTokenIssuer
from app.identity.remote_catalog import RemoteCatalog
from tests.fakes.clock import FakeClock

pytestmark = pytest.mark.anyio

USER = {
    "apiVersion": "backstage.io/v1alpha1",
    "kind": "User",
    "metadata": {"name": "ada", "namespace": "default"},
    "spec": {"profile": {"email": "ada@example.com"}, "memberOf": []},
}
SHARED: dict[str, Any] = {
    "backend": {"baseUrl": "https://backstage.example.com"},
    "discovery": {
        "endpoints": [
            {"target": "http://auth-py:7007/api/{{pluginId}}", "plugins": ["auth"]},
            {"target": {"internal": "http://cat:7007/api/{{pluginId}}"}, "plugins": ["catalog"]},
        ]
    },
    # The catalog plugin's own locations, relative to the Backstage backend: never read.
    "catalog": {"locations": [{"type": "file", "target": "../../examples/org.yaml"}]},
}


def _discovery(raw: dict[str, Any]) -> Any:
    return read_discovery(
        raw, backend_base_url="https://backstage.example.com", listen_host="", listen_port=7007
    )


async def test_a_shared_config_uses_the_real_catalog_with_plugin_tokens(tmp_path: Path) -> None:
    clock = FakeClock()
    ours = PluginTokenIssuer(DatabasePluginKeys(MemoryPublicKeyRows(), clock), clock)
    seen: list[httpx2.Request] = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if request.url.path.startswith("/api/catalog/entities/by-name/"):
            return httpx2.Response(200, json=USER)
        return httpx2.Response(200, json={"items": [USER], "pageInfo": {}})

    catalog = catalog_from_config(
        SHARED,
        config_dir=tmp_path,
        clock=clock,
        transport=httpx2.MockTransport(answer),
        discovery=_discovery(SHARED),
        plugin_tokens=ours,
    )
    assert isinstance(catalog, RemoteCatalog)

    async def run() -> None:
        user = await catalog.get_user("user:default/ada")
        assert user is not None and user.ref == "user:default/ada"
        keys = KeySet.import_key_set({"keys": await ours.public_keys()})
        # who-am-i's whole entity: the same plugin token (the real catalog answers 401
        # without one).
        assert await catalog.get_entity("user:default/ada") == USER
        query, by_name = seen
        assert str(query.url).startswith("http://cat:7007/api/catalog/entities/by-query?")
        assert by_name.url.path == "/api/catalog/entities/by-name/user/default/ada"
        for request in seen:
            token = request.headers["authorization"].removeprefix("Bearer ")
            decoded = jwt.decode(token, keys)
            assert decoded.header["typ"] == "vnd.backstage.plugin"
            assert (decoded.claims["sub"], decoded.claims["aud"]) == ("auth", "catalog")
        await catalog.aclose()

    await run()
    assert "discovery" in describe_catalog(SHARED, _discovery(SHARED))
    assert "http://cat:7007/api/catalog" in describe_catalog(SHARED, _discovery(SHARED))


def test_without_discovery_of_auth_the_file_locations_are_read(tmp_path: Path) -> None:
    (tmp_path / "org.yaml").write_text(
        "apiVersion: backstage.io/v1alpha1\nkind: User\nmetadata: {name: ada}\nspec: {}\n"
    )
    raw = {"catalog": {"locations": [{"type": "file", "target": "org.yaml"}]}}
    clock = FakeClock()
    ours = PluginTokenIssuer(DatabasePluginKeys(MemoryPublicKeyRows(), clock), clock)
    catalog = catalog_from_config(
        raw, config_dir=tmp_path, clock=clock, discovery=_discovery(raw), plugin_tokens=ours
    )
    assert isinstance(catalog, FileCatalog)
    assert describe_catalog(raw, _discovery(raw)).startswith("file locations")


def test_auth_catalog_remote_stays_the_explicit_override(tmp_path: Path) -> None:
    raw = {**SHARED, "auth": {"catalog": {"remote": {"baseUrl": "http://x", "token": "t"}}}}
    clock = FakeClock()
    catalog = catalog_from_config(raw, config_dir=tmp_path, clock=clock, discovery=_discovery(raw))
    assert isinstance(catalog, RemoteCatalog) and catalog.base_url == "http://x"
    assert "auth.catalog.remote" in describe_catalog(raw, _discovery(raw))


async def test_known_users_are_served_from_the_cache_while_the_catalog_is_down() -> None:
    clock = FakeClock()
    up = True

    def answer(request: httpx2.Request) -> httpx2.Response:
        if not up:
            return httpx2.Response(503)
        return httpx2.Response(200, json={"items": [USER], "pageInfo": {}})

    catalog = RemoteCatalog(
        "http://cat", "t", clock=clock, transport=httpx2.MockTransport(answer), stale_seconds=60
    )

    assert await catalog.get_user("user:default/ada") is not None
    up = False
    clock.advance(30)  # past the 10 s TTL, within the stale window
    assert await catalog.get_user("user:default/ada") is not None
    clock.advance(60)  # past the stale window: the outage shows
    try:
        await catalog.get_user("user:default/ada")
    except Exception as exc:
        assert "answered HTTP 503" in str(exc)
    else:
        raise AssertionError("expected the outage to show")
    await catalog.aclose()
