from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from app.config.validation import ConfigError
from app.identity.catalog import InMemoryCatalog
from app.identity.catalog_config import aclose_catalog, catalog_from_config
from app.identity.file_catalog import FileCatalog
from app.identity.remote_catalog import RemoteCatalog
from tests.catalog.fake_catalog import TOKEN, FakeCatalog, user_entity
from tests.catalog.helpers import FIXTURES, run, user_doc, users_by_ref, write
from tests.fakes.clock import FakeClock

REMOTE = {"baseUrl": "https://backstage.acme.example", "token": TOKEN}


def _load(raw: dict[str, Any], clock: FakeClock, config_dir: Path = FIXTURES, **kw: Any) -> Any:
    return catalog_from_config(raw, config_dir=config_dir, clock=clock, **kw)


def test_nothing_configured_is_an_empty_catalog(clock: FakeClock) -> None:
    catalog = _load({"app": {}, "auth": {"providers": {}}}, clock)
    assert isinstance(catalog, InMemoryCatalog)
    assert run(catalog.find_users()) == []
    run(aclose_catalog(catalog))


def test_only_non_file_locations_is_an_empty_catalog(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    raw = {"catalog": {"locations": [{"type": "url", "target": "https://x.example/org.yaml"}]}}
    with caplog.at_level(logging.INFO):
        catalog = _load(raw, clock)
    assert isinstance(catalog, InMemoryCatalog)
    assert "catalog.locations[0]: locations of type 'url' are not read" in caplog.text


def test_file_locations(clock: FakeClock, tmp_path: Path) -> None:
    write(tmp_path / "conf" / "org" / "users.yaml", user_doc("alice"))
    write(tmp_path / "abs.yaml", user_doc("bert"))
    raw = {
        "catalog": {
            "locations": [
                {"type": "file", "target": "org/users.yaml"},
                {"type": "file", "target": str(tmp_path / "abs.yaml")},
                {"type": "file", "target": "../abs.yaml"},  # the same file again
            ]
        },
        "auth": {"catalog": {"fileRefreshInterval": {"minutes": 2}}},
    }
    catalog = _load(raw, clock, config_dir=tmp_path / "conf")
    assert isinstance(catalog, FileCatalog)
    assert sorted(users_by_ref(catalog)) == ["user:default/alice", "user:default/bert"]
    write(tmp_path / "abs.yaml", user_doc("carl"))
    clock.advance(119)
    assert run(catalog.get_user("user:default/carl")) is None
    clock.advance(1)
    assert run(catalog.get_user("user:default/carl")) is not None


def test_without_any_rules_every_user_is_read(clock: FakeClock) -> None:
    raw = {"catalog": {"locations": [{"type": "file", "target": "contractors.yaml"}]}}
    assert list(users_by_ref(_load(raw, clock))) == ["user:default/mallory"]


def test_location_rules_without_global_rules_use_backstage_defaults(clock: FakeClock) -> None:
    raw = {
        "catalog": {
            "locations": [
                {"type": "file", "target": "contractors.yaml"},
                {"type": "file", "target": "partners/org.yaml", "rules": [{"allow": ["User"]}]},
            ]
        }
    }
    users = users_by_ref(_load(raw, clock))
    # Only partners users; the guests Group is refused, so it grants no membership.
    assert sorted(users) == ["user:partners/carol", "user:partners/jane"]
    assert users["user:partners/carol"].member_of == ()
    # jane's own spec.memberOf still names the group (a relation needs no target entity).
    assert users["user:partners/jane"].member_of == ("group:partners/guests",)


def test_global_rules_with_location_matchers(clock: FakeClock) -> None:
    raw = {
        "catalog": {
            "rules": [
                {"allow": ["Location"]},
                {
                    "allow": ["User", {"kind": "Group", "spec.type": "team"}],
                    "locations": [{"type": "file", "pattern": "org/*.yaml"}],
                },
                {"allow": ["User"], "locations": [{"type": "file", "exact": "contractors.yaml"}]},
                {"allow": ["User"], "locations": [{"type": "url", "pattern": "**"}]},
            ],
            "locations": [
                {"type": "file", "target": "all.yaml"},
                {"type": "file", "target": "contractors.yaml"},
            ],
        }
    }
    users = users_by_ref(_load(raw, clock))
    assert "user:partners/carol" not in users  # partners/ matches no rule
    assert "user:default/mallory" in users
    # sales is a department: refused, so dave keeps only his own memberOf.
    assert users["user:default/dave"].member_of == ("group:partners/guests",)
    assert users["user:default/bob"].member_of == ("group:default/backend",)


def test_remote(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeCatalog([user_entity("jane", member_of=["group:default/t"])])
    raw = {
        "auth": {"catalog": {"remote": {**REMOTE, "cacheTtl": "1m", "timeout": {"seconds": 3}}}},
        "catalog": {"locations": [{"type": "file", "target": "contractors.yaml"}]},
    }
    with caplog.at_level(logging.INFO):
        catalog = _load(raw, clock, transport=fake.transport())
    assert isinstance(catalog, RemoteCatalog)
    assert "auth.catalog.remote is configured; catalog.locations is not read" in caplog.text
    jane = run(catalog.get_user("user:default/jane"))
    assert jane is not None and jane.member_of == ("group:default/t",)
    clock.advance(59)
    run(catalog.get_user("user:default/jane"))
    assert len(fake.requests) == 1
    assert fake.requests[0].extensions["timeout"] == {
        "connect": 3.0,
        "read": 3.0,
        "write": 3.0,
        "pool": 3.0,
    }
    run(aclose_catalog(catalog))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"auth": {"catalog": []}}, "auth.catalog: must be an object"),
        ({"auth": {"catalog": {"remtoe": {}}}}, "auth.catalog.remtoe: unknown key"),
        ({"auth": {"catalog": {"remote": "x"}}}, "auth.catalog.remote: must be an object"),
        (
            {"auth": {"catalog": {"remote": {"token": "t"}}}},
            "auth.catalog.remote.baseUrl: required",
        ),
        (
            {"auth": {"catalog": {"remote": {**REMOTE, "baseUrl": "backstage:7007"}}}},
            "auth.catalog.remote.baseUrl: 'backstage:7007' is not an absolute http(s) URL",
        ),
        (
            {"auth": {"catalog": {"remote": {"baseUrl": REMOTE["baseUrl"], "token": ""}}}},
            "auth.catalog.remote.token: required",
        ),
        (
            {"auth": {"catalog": {"remote": {**REMOTE, "cacheTtl": "soon"}}}},
            "auth.catalog.remote.cacheTtl: invalid duration 'soon'",
        ),
        (
            {"auth": {"catalog": {"remote": {**REMOTE, "timeout": 0}}}},
            "auth.catalog.remote.timeout: invalid duration 0",
        ),
        (
            {"auth": {"catalog": {"remote": {**REMOTE, "timeout": "0s"}}}},
            "auth.catalog.remote.timeout: must be positive",
        ),
        (
            {"auth": {"catalog": {"remote": {**REMOTE, "tokne": "x"}}}},
            "auth.catalog.remote.tokne: unknown key",
        ),
        ({"catalog": {"locations": {"type": "file"}}}, "catalog.locations: must be a list"),
        (
            {"catalog": {"locations": [{"type": "file", "target": "a.yaml"}, {"type": "file"}]}},
            "catalog.locations[1].target: must be a non-empty string",
        ),
        ({"catalog": {"locations": [{"target": "a.yaml"}]}}, "catalog.locations[0].type"),
        (
            {
                "catalog": {
                    "locations": [{"type": "file", "target": "a", "rules": [{"allow": "User"}]}]
                }
            },
            "catalog.locations[0].rules[0].allow: must be a list",
        ),
        (
            {"catalog": {"rules": [{"allow": [{"kind": "Group", "spec.type": 1}]}]}},
            "catalog.rules[0].allow[0].spec.type: must be a string",
        ),
        (
            {
                "catalog": {
                    "rules": [
                        {
                            "allow": ["User"],
                            "locations": [{"type": "file", "exact": "a", "pattern": "b"}],
                        }
                    ]
                }
            },
            "catalog.rules[0].locations[0]: a catalog rule location cannot have both",
        ),
        (
            {
                "auth": {"catalog": {"fileRefreshInterval": "-1s"}},
                "catalog": {"locations": [{"type": "file", "target": "a.yaml"}]},
            },
            "auth.catalog.fileRefreshInterval: must be zero or positive",
        ),
    ],
)
def test_invalid_config_names_the_key(clock: FakeClock, raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _load(raw, clock)
    assert str(info.value).startswith(message)
