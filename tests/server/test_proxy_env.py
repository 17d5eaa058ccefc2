"""Which outbound URLs go through a proxy: HTTPS_PROXY / HTTP_PROXY / ALL_PROXY / NO_PROXY
with curl's and Python's semantics (lower case wins, domains match their subdomains, CIDR
ranges match IP literals, ``*`` bypasses everything)."""

from __future__ import annotations

import pytest

from app.server.proxy_env import ProxyRules

ENV = {
    "HTTPS_PROXY": "http://secure-proxy:3128",
    "HTTP_PROXY": "plain-proxy:8080",
    "NO_PROXY": "localhost, .internal.example, corp.example:8443, 10.0.0.0/8,[fd00::1]",
}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://idp.example.com/token", "http://secure-proxy:3128"),
        # No scheme in the variable: http:// (as curl reads it).
        ("http://idp.example.com/token", "http://plain-proxy:8080"),
        ("http://localhost:7007/x", None),
        ("https://sso.internal.example/x", None),
        ("https://internal.example/x", None),  # the leading dot also covers the domain
        ("https://notinternal.example/x", "http://secure-proxy:3128"),
        ("https://corp.example:8443/x", None),
        ("https://corp.example/x", "http://secure-proxy:3128"),  # another port
        ("https://10.1.2.3/x", None),
        ("https://11.1.2.3/x", "http://secure-proxy:3128"),
        ("https://[fd00::1]/x", None),
        ("https://[fd00::2]/x", "http://secure-proxy:3128"),
    ],
)
def test_proxy_for(url: str, expected: str | None) -> None:
    assert ProxyRules.from_environ(ENV).proxy_for(url) == expected


def test_lower_case_wins_and_all_proxy_is_the_fallback() -> None:
    rules = ProxyRules.from_environ(
        {
            "HTTPS_PROXY": "http://upper:1",
            "https_proxy": "http://lower:2",
            "ALL_PROXY": "http://all:3",
        }
    )
    assert rules.proxy_for("https://a.example/") == "http://lower:2"
    assert rules.proxy_for("http://a.example/") == "http://all:3"


def test_star_bypasses_everything_and_nothing_set_is_direct() -> None:
    assert ProxyRules.from_environ({**ENV, "no_proxy": "*"}).proxy_for("https://a.b/") is None
    assert ProxyRules.from_environ({}).proxy_for("https://a.b/") is None


def test_http_proxy_is_ignored_under_cgi() -> None:
    # "httpoxy": under CGI, HTTP_PROXY can come from a request's Proxy header.
    rules = ProxyRules.from_environ({"HTTP_PROXY": "http://evil:1", "REQUEST_METHOD": "GET"})
    assert rules.proxy_for("http://a.example/") is None


def test_describe_hides_credentials_and_says_why_direct() -> None:
    rules = ProxyRules.from_environ({"HTTPS_PROXY": "http://user:pw@proxy:3128", "NO_PROXY": "a.b"})
    assert rules.describe("https://idp.example/") == "via proxy http://proxy:3128"
    assert rules.describe("https://x.a.b/") == "direct (NO_PROXY)"
    assert rules.describe("http://idp.example/") == "direct"
