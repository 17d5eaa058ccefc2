"""Discovery as Backstage's ``HostDiscovery`` resolves it: ``backend.baseUrl`` and
``backend.listen`` fallbacks, ``discovery.endpoints`` with ``{{pluginId}}``, string and
``{internal, external}`` targets, ``*``; our issuer follows the external URL of ``auth``."""

from __future__ import annotations

from typing import Any

import pytest

from app.config.discovery import read_discovery
from app.config.settings import read_settings
from app.config.validation import ConfigError


def _discovery(endpoints: Any = None, **backend: Any) -> Any:
    raw: dict[str, Any] = {"backend": {"baseUrl": "http://main:7007", **backend}}
    if endpoints is not None:
        raw["discovery"] = {"endpoints": endpoints}
    return read_discovery(
        raw, backend_base_url="http://main:7007", listen_host="", listen_port=7007
    )


def test_fallbacks_follow_backend_base_url_and_listen() -> None:
    d = _discovery()
    assert d.external("catalog") == "http://main:7007/api/catalog"
    assert d.internal("catalog") == "http://localhost:7007/api/catalog"
    assert not d.configured("catalog")


@pytest.mark.parametrize(
    ("host", "expected"),
    [("0.0.0.0", "http://127.0.0.1:9/api/x"), ("::1", "http://[::1]:9/api/x")],
)
def test_internal_fallback_host_rules(host: str, expected: str) -> None:
    d = read_discovery({}, backend_base_url="http://b", listen_host=host, listen_port=9)
    assert d.internal("x") == expected


def test_https_backend_makes_the_internal_fallback_https() -> None:
    d = _discovery(https=True)
    assert d.internal("x") == "https://localhost:7007/api/x"


def test_string_and_split_targets_with_plugin_id_and_wildcard() -> None:
    d = _discovery(
        [
            {"target": "http://auth-svc:7007/api/{{ pluginId }}", "plugins": ["auth"]},
            {
                "target": {"internal": "http://cat:7007/api/{{pluginId}}"},
                "plugins": ["catalog"],
            },
            {"target": {"external": "https://ext.example.com/{{pluginId}}"}, "plugins": ["*"]},
        ]
    )
    assert d.internal("auth") == d.external("auth") == "http://auth-svc:7007/api/auth"
    assert d.internal("catalog") == "http://cat:7007/api/catalog"
    # No external target for catalog: the "*" entry answers.
    assert d.external("catalog") == "https://ext.example.com/catalog"
    assert d.internal("search") == "http://localhost:7007/api/search"
    assert d.external("a b") == "https://ext.example.com/a%20b"
    assert d.configured("auth") and d.configured("catalog") and not d.configured("search")


@pytest.mark.parametrize(
    ("endpoints", "fragment"),
    [
        ("x", "discovery.endpoints: must be a list"),
        ([{"target": "http://x", "plugins": "auth"}], "discovery.endpoints[0].plugins"),
        ([{"target": 3, "plugins": []}], "discovery.endpoints[0].target"),
        ([{"target": "ftp://x", "plugins": []}], "not an absolute http(s) URL pattern"),
        ([{"target": {"internal": "http://x+srv+"}, "plugins": []}], "SRV"),
    ],
)
def test_bad_endpoints_name_the_key(endpoints: Any, fragment: str) -> None:
    with pytest.raises(ConfigError, match=r".*") as info:
        _discovery(endpoints)
    assert fragment in str(info.value)


SHARED = {
    "app": {"baseUrl": "https://backstage.example.com"},
    "backend": {"baseUrl": "https://backstage.example.com"},
    "discovery": {
        "endpoints": [
            {
                "target": {
                    "internal": "http://auth-py:7007/api/{{pluginId}}",
                    "external": "https://auth.example.com/api/{{pluginId}}",
                },
                "plugins": ["auth"],
            }
        ]
    },
}


def test_shared_config_issuer_follows_discovery() -> None:
    s = read_settings(SHARED)
    assert s.backend_base_url == "https://backstage.example.com"
    assert s.auth_base_url == "https://auth.example.com/api/auth"
    assert s.plugins.internal("catalog") == "http://localhost:7007/api/catalog"


def test_without_discovery_the_issuer_is_backend_base_url() -> None:
    s = read_settings({k: v for k, v in SHARED.items() if k != "discovery"})
    assert s.auth_base_url == "https://backstage.example.com/api/auth"
