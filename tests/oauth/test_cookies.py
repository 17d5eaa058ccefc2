"""app.oauth.cookies: the OAuth flow's cookies.

Backstage: ``plugins/auth-node/src/oauth/OAuthCookieManager.ts``
"""

from __future__ import annotations

from email.utils import formatdate, parsedate_to_datetime

import pytest

from app.oauth.cookies import (
    DEFAULT_SESSION_MAX_AGE_SECONDS,
    MAX_COOKIE_SIZE_CHARS,
    OAuthCookieManager,
    decode_cookie_value,
    encode_cookie_value,
)
from app.oauth.origins import Origin, parse_origin

NOW = 1_700_000_000.0
ATTRIBUTE_ORDER = ["Max-Age", "Domain", "Path", "Expires", "HttpOnly", "Secure", "SameSite"]


class FixedClock:
    def now(self) -> float:
        return NOW


def origin(url: str) -> Origin:
    parsed = parse_origin(url)
    assert parsed is not None
    return parsed


def manager(
    callback_url: str = "http://localhost:7007/api/auth/github/handler/frame",
    app_url: str = "http://localhost:3000",
    *,
    provider_id: str = "github",
    session_max_age_seconds: int | None = None,
) -> OAuthCookieManager:
    return OAuthCookieManager(
        provider_id=provider_id,
        callback_url=callback_url,
        default_app_origin=origin(app_url),
        session_max_age_seconds=session_max_age_seconds,
        clock=FixedClock(),
    )


class Cookie:
    """One parsed Set-Cookie line."""

    def __init__(self, line: str) -> None:
        first, *rest = line.split("; ")
        self.line = line
        self.name, self.value = first.split("=", 1)
        self.order: list[str] = []
        self.attrs: dict[str, str | None] = {}
        for part in rest:
            key, sep, val = part.partition("=")
            assert key not in self.attrs, line
            self.order.append(key)
            self.attrs[key] = val if sep else None

    @property
    def max_age(self) -> int:
        return int(self.attrs["Max-Age"] or "")

    @property
    def is_clear(self) -> bool:
        return self.max_age == 0

    @property
    def is_legacy_clear(self) -> bool:
        return self.is_clear and "Domain" in self.attrs

    @property
    def expires(self) -> float:
        return parsedate_to_datetime(self.attrs["Expires"] or "").timestamp()


def parse(lines: list[str]) -> list[Cookie]:
    return [Cookie(line) for line in lines]


def jar(lines: list[str], before: dict[str, str] | None = None) -> dict[str, str]:
    """What the browser sends next time (Path ignored: all are under the same base)."""
    out = dict(before or {})
    for c in parse(lines):
        if "Domain" in c.attrs:
            continue
        if c.is_clear:
            out.pop(c.name, None)
        else:
            out[c.name] = c.value
    return out


# -- names and paths -----------------------------------------------------------------


def test_cookie_names() -> None:
    m = manager(provider_id="my-oidc", callback_url="http://b/api/auth/my-oidc/handler/frame")
    assert m.nonce_name == "my-oidc-nonce"
    assert m.refresh_token_name == "my-oidc-refresh-token"
    assert m.granted_scope_name == "my-oidc-granted-scope"


@pytest.mark.parametrize(
    ("provider_id", "callback_url", "base_path"),
    [
        ("github", "http://localhost:7007/api/auth/github/handler/frame", "/api/auth/github"),
        ("github", "https://b.example.com/api/auth/github/handler/frame/", "/api/auth/github"),
        (
            "oidc",
            "https://b.example.com/backstage/api/auth/oidc/handler/frame",
            "/backstage/api/auth/oidc",
        ),
        ("github", "https://b.example.com/auth/callback", "/auth/callback/github"),
        ("github", "https://b.example.com/", "/github"),
        ("github", "https://b.example.com", "/github"),
        (
            "github",
            "https://b.example.com/api/auth/gitlab/handler/frame",
            "/api/auth/gitlab/handler/frame/github",
        ),
    ],
)
def test_base_path(provider_id: str, callback_url: str, base_path: str) -> None:
    m = manager(callback_url, provider_id=provider_id)
    assert m.base_path == base_path
    nonce = [c for c in parse(m.set_nonce("n", app_origin=None)) if not c.is_clear]
    assert nonce[0].attrs["Path"] == f"{base_path}/handler"
    token = [c for c in parse(m.set_refresh_token("t", app_origin=None, request_cookies={}))]
    assert token[-1].attrs["Path"] == base_path


# -- the nonce -------------------------------------------------------------------------


def test_set_nonce_matches_observed_http_same_site() -> None:
    legacy, nonce = parse(manager().set_nonce("OGZeh2QpDuqiOYyEC31f3A==", app_origin=None))
    assert legacy.name == "github-nonce"
    assert legacy.value == ""
    assert legacy.attrs == {
        "Max-Age": "0",
        "Domain": "localhost",
        "Path": "/api/auth/github",  # the base path, not /handler
        "Expires": legacy.attrs["Expires"],
        "HttpOnly": None,
        "SameSite": "Lax",
    }
    assert legacy.expires <= NOW
    assert nonce.line == (
        "github-nonce=OGZeh2QpDuqiOYyEC31f3A%3D%3D; Max-Age=600; Path=/api/auth/github/handler; "
        f"Expires={formatdate(NOW + 600, usegmt=True)}; HttpOnly; SameSite=Lax"
    )
    assert nonce.attrs["Expires"] == "Tue, 14 Nov 2023 22:23:20 GMT"


def test_set_nonce_https_cross_site() -> None:
    m = manager("https://api.example.com/api/auth/github/handler/frame", "https://app.example.com")
    legacy, nonce = parse(m.set_nonce("OGZeh2QpDuqiOYyEC31f3A==", app_origin=None))
    assert legacy.line.endswith("; HttpOnly; Secure; SameSite=None")
    assert legacy.attrs["Domain"] == "api.example.com"
    assert nonce.line.endswith("; HttpOnly; Secure; SameSite=None")
    assert "Domain" not in nonce.attrs
    assert nonce.max_age == 600


def test_get_nonce_decodes() -> None:
    m = manager()
    assert (
        m.get_nonce({"github-nonce": "OGZeh2QpDuqiOYyEC31f3A%3D%3D"}) == "OGZeh2QpDuqiOYyEC31f3A=="
    )
    assert m.get_nonce({}) is None
    assert m.get_nonce({"github-nonce": ""}) is None
    assert m.get_nonce({"gitlab-nonce": "x"}) is None


def test_nonce_round_trip_through_set_cookie() -> None:
    m = manager()
    assert m.get_nonce(jar(m.set_nonce("a+b/c==", app_origin=None))) == "a+b/c=="


def test_clear_nonce() -> None:
    (clear,) = parse(manager().clear_nonce(app_origin=None))
    assert clear.name == "github-nonce"
    assert clear.value == ""
    assert clear.max_age == 0
    assert clear.attrs["Path"] == "/api/auth/github/handler"
    assert "Domain" not in clear.attrs
    assert clear.expires <= NOW


# -- attributes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("callback_url", "app_url", "secure", "same_site"),
    [
        # Ports are ignored: localhost:3000 -> localhost:7007 is same-site.
        (
            "http://localhost:7007/api/auth/github/handler/frame",
            "http://localhost:3000",
            False,
            "Lax",
        ),
        (
            "https://api.example.com/api/auth/github/handler/frame",
            "https://app.example.com",
            True,
            "None",
        ),
        (
            "https://example.com/api/auth/github/handler/frame",
            "https://example.com:3000",
            True,
            "Lax",
        ),
        ("https://Example.COM/api/auth/github/handler/frame", "https://example.com", True, "Lax"),
        # Cross-site over plain http stays Lax.
        (
            "http://api.example.com/api/auth/github/handler/frame",
            "http://app.example.com",
            False,
            "Lax",
        ),
        # An http app with an https backend on another host: None (Secure decides).
        (
            "https://api.example.com/api/auth/github/handler/frame",
            "http://localhost:3000",
            True,
            "None",
        ),
    ],
)
def test_secure_and_same_site(
    callback_url: str, app_url: str, secure: bool, same_site: str
) -> None:
    m = manager(callback_url, app_url)
    lines = (
        m.set_nonce("n", app_origin=None)
        + m.set_refresh_token("t", app_origin=None, request_cookies={})
        + m.set_granted_scopes("s", app_origin=None, request_cookies={})
        + m.clear_nonce(app_origin=None)
        + m.clear_refresh_token(app_origin=None, request_cookies={"github-refresh-token": "t"})
    )
    for c in parse(lines):
        assert ("Secure" in c.attrs) is secure, c.line
        assert c.attrs["SameSite"] == same_site, c.line
        assert "HttpOnly" in c.attrs, c.line
        assert c.attrs["HttpOnly"] is None


def test_request_app_origin_overrides_default_for_same_site() -> None:
    m = manager("https://api.example.com/api/auth/github/handler/frame", "https://api.example.com")
    same = parse(m.set_nonce("n", app_origin=None))[-1]
    cross = parse(m.set_nonce("n", app_origin=origin("https://app.example.com")))[-1]
    back = parse(m.set_nonce("n", app_origin=origin("https://API.example.com:8443")))[-1]
    assert same.attrs["SameSite"] == "Lax"
    assert cross.attrs["SameSite"] == "None"
    assert back.attrs["SameSite"] == "Lax"


def test_attribute_order_is_that_of_the_cookie_package() -> None:
    m = manager("https://api.example.com/api/auth/github/handler/frame", "https://app.example.com")
    lines = m.set_nonce("n", app_origin=None) + m.set_refresh_token(
        "t", app_origin=None, request_cookies={"github-refresh-token-0": "x"}
    )
    for c in parse(lines):
        assert c.order == [a for a in ATTRIBUTE_ORDER if a in c.order], c.line


# -- refresh token and granted scopes ----------------------------------------------------


@pytest.mark.parametrize(
    ("session_max_age", "max_age"),
    [(None, DEFAULT_SESSION_MAX_AGE_SECONDS), (3600, 3600), (86400 * 7, 86400 * 7)],
)
def test_refresh_token_lifetime(session_max_age: int | None, max_age: int) -> None:
    assert DEFAULT_SESSION_MAX_AGE_SECONDS == 1000 * 86400
    m = manager(session_max_age_seconds=session_max_age)
    legacy, cookie = parse(m.set_refresh_token("tok", app_origin=None, request_cookies={}))
    assert legacy.is_legacy_clear
    assert legacy.name == "github-refresh-token"
    assert legacy.attrs["Domain"] == "localhost"
    assert legacy.attrs["Path"] == "/api/auth/github"
    assert cookie.name == "github-refresh-token"
    assert cookie.value == "tok"
    assert cookie.max_age == max_age
    assert cookie.expires == NOW + max_age
    assert cookie.attrs["Path"] == "/api/auth/github"
    assert "Domain" not in cookie.attrs


def test_granted_scopes_cookie() -> None:
    m = manager(session_max_age_seconds=7200)
    legacy, cookie = parse(
        m.set_granted_scopes("repo read:user", app_origin=None, request_cookies={})
    )
    assert legacy.is_legacy_clear
    assert cookie.line == (
        "github-granted-scope=repo%20read%3Auser; Max-Age=7200; Path=/api/auth/github; "
        f"Expires={formatdate(NOW + 7200, usegmt=True)}; HttpOnly; SameSite=Lax"
    )
    assert m.get_granted_scopes({"github-granted-scope": "repo%20read%3Auser"}) == "repo read:user"
    assert m.get_granted_scopes({}) is None


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("OGZeh2QpDuqiOYyEC31f3A==", "OGZeh2QpDuqiOYyEC31f3A%3D%3D"),
        ("a+b/c=", "a%2Bb%2Fc%3D"),
        ("repo read:user", "repo%20read%3Auser"),
        ("!'()*-._~", "!'()*-._~"),  # encodeURIComponent leaves these alone
        ('a;b,c"d\\e%', "a%3Bb%2Cc%22d%5Ce%25"),
        ("é✓", "%C3%A9%E2%9C%93"),
        ("", ""),
    ],
)
def test_values_are_encode_uri_component_encoded(value: str, encoded: str) -> None:
    assert encode_cookie_value(value) == encoded
    assert decode_cookie_value(encoded) == value
    if value:
        m = manager()
        cookie = parse(m.set_refresh_token(value, app_origin=None, request_cookies={}))[-1]
        assert cookie.value == encoded
        assert m.get_refresh_token({"github-refresh-token": encoded}) == value


def test_every_write_is_preceded_by_its_legacy_domain_clear() -> None:
    m = manager("https://api.example.com/api/auth/github/handler/frame", "https://app.example.com")
    lines = (
        m.set_nonce("n", app_origin=None)
        + m.set_refresh_token("x" * 9000, app_origin=None, request_cookies={})
        + m.set_granted_scopes("s", app_origin=None, request_cookies={})
    )
    cookies = parse(lines)
    writes = [i for i, c in enumerate(cookies) if not c.is_clear]
    assert len(writes) == 5  # nonce, 3 chunks, scope
    for i in writes:
        prev = cookies[i - 1]
        assert prev.name == cookies[i].name
        assert prev.is_legacy_clear
        assert prev.attrs["Domain"] == "api.example.com"
        assert prev.attrs["Path"] == "/api/auth/github"


# -- chunking ---------------------------------------------------------------------------


def _value_lengths_ok(lines: list[str]) -> None:
    for c in parse(lines):
        assert len(c.value) <= MAX_COOKIE_SIZE_CHARS, c.name


def test_value_at_the_limit_is_not_chunked() -> None:
    m = manager()
    lines = m.set_refresh_token("a" * 4000, app_origin=None, request_cookies={})
    assert [c.name for c in parse(lines)] == ["github-refresh-token", "github-refresh-token"]


@pytest.mark.parametrize(
    ("value", "chunks"),
    [
        ("a" * 4001, 2),
        ("a" * 8000, 2),
        ("a" * 8001, 3),
        ("+/=" * 2000, 5),  # 6000 chars encoding to 18000
        ("é" * 1000, 2),  # 6000 encoded chars
        ("ab+" * 1500, 2),  # 7500 encoded chars
    ],
)
def test_long_values_are_chunked(value: str, chunks: int) -> None:
    m = manager()
    lines = m.set_refresh_token(value, app_origin=None, request_cookies={})
    _value_lengths_ok(lines)
    written = [c for c in parse(lines) if not c.is_clear]
    assert [c.name for c in written] == [f"github-refresh-token-{i}" for i in range(chunks)]
    # Every chunk decodes on its own: no percent-escape is split across chunks.
    for c in written:
        assert encode_cookie_value(decode_cookie_value(c.value)) == c.value
        assert c.max_age == DEFAULT_SESSION_MAX_AGE_SECONDS
        assert c.attrs["Path"] == "/api/auth/github"
    assert m.get_refresh_token(jar(lines)) == value


def test_chunked_granted_scopes_are_written_in_chunks() -> None:
    m = manager()
    scope = " ".join(f"scope{i}" for i in range(1000))
    lines = m.set_granted_scopes(scope, app_origin=None, request_cookies={})
    _value_lengths_ok(lines)
    assert {c.name for c in parse(lines)} >= {"github-granted-scope-0", "github-granted-scope-1"}


def test_switch_unchunked_to_chunked_clears_the_unchunked_form() -> None:
    m = manager()
    before = {"github-refresh-token": "old"}
    lines = m.set_refresh_token("x" * 5000, app_origin=None, request_cookies=before)
    clears = [c for c in parse(lines) if c.is_clear and not c.is_legacy_clear]
    assert [c.name for c in clears] == ["github-refresh-token"]
    assert clears[0].attrs["Path"] == "/api/auth/github"
    after = jar(lines, before)
    assert set(after) == {"github-refresh-token-0", "github-refresh-token-1"}
    assert m.get_refresh_token(after) == "x" * 5000


def test_switch_chunked_to_unchunked_clears_every_chunk() -> None:
    m = manager()
    before = {f"github-refresh-token-{i}": "old" for i in range(3)}
    lines = m.set_refresh_token("new", app_origin=None, request_cookies=before)
    clears = [c.name for c in parse(lines) if c.is_clear and not c.is_legacy_clear]
    assert clears == [f"github-refresh-token-{i}" for i in range(3)]
    after = jar(lines, before)
    assert after == {"github-refresh-token": "new"}
    assert m.get_refresh_token(after) == "new"


def test_fewer_chunks_clears_only_the_stale_ones() -> None:
    m = manager()
    before = {f"github-refresh-token-{i}": "old" for i in range(4)}
    lines = m.set_refresh_token("y" * 6000, app_origin=None, request_cookies=before)
    clears = [c.name for c in parse(lines) if c.is_clear and not c.is_legacy_clear]
    assert clears == ["github-refresh-token-2", "github-refresh-token-3"]
    after = jar(lines, before)
    assert set(after) == {"github-refresh-token-0", "github-refresh-token-1"}
    assert m.get_refresh_token(after) == "y" * 6000


def test_same_size_rewrite_clears_nothing() -> None:
    m = manager()
    lines = m.set_refresh_token("t", app_origin=None, request_cookies={"github-refresh-token": "o"})
    assert [c.is_legacy_clear for c in parse(lines)] == [True, False]


@pytest.mark.parametrize(
    ("cookies", "expected"),
    [
        ({}, None),
        ({"github-refresh-token": ""}, None),
        ({"github-refresh-token": "a%2Bb"}, "a+b"),
        ({"github-refresh-token-0": "ab", "github-refresh-token-1": "%2Bc"}, "ab+c"),
        # Chunks win over the unchunked form.
        ({"github-refresh-token": "old", "github-refresh-token-0": "new"}, "new"),
        # Concatenation stops at the first missing index.
        (
            {
                "github-refresh-token-0": "a",
                "github-refresh-token-1": "b",
                "github-refresh-token-3": "d",
            },
            "ab",
        ),
        # Without -0 the chunks are not a chunked cookie.
        ({"github-refresh-token-1": "b"}, None),
        ({"gitlab-refresh-token": "x"}, None),
    ],
)
def test_get_refresh_token(cookies: dict[str, str], expected: str | None) -> None:
    assert manager().get_refresh_token(cookies) == expected


# -- clearing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cookies", "cleared"),
    [
        ({}, []),
        ({"other": "x", "github-nonce": "n"}, []),
        ({"github-refresh-token": "t"}, ["github-refresh-token"]),
        (
            {"github-refresh-token-0": "a", "github-refresh-token-1": "b"},
            ["github-refresh-token-0", "github-refresh-token-1"],
        ),
        (
            {"github-refresh-token": "t", "github-refresh-token-0": "a"},
            ["github-refresh-token", "github-refresh-token-0"],
        ),
    ],
)
def test_clear_refresh_token_only_clears_what_the_request_has(
    cookies: dict[str, str], cleared: list[str]
) -> None:
    m = manager("https://api.example.com/api/auth/github/handler/frame", "https://app.example.com")
    lines = parse(m.clear_refresh_token(app_origin=None, request_cookies=cookies))
    assert [c.name for c in lines] == cleared
    for c in lines:
        assert c.value == ""
        assert c.max_age == 0
        assert c.expires <= NOW
        assert c.attrs["Path"] == "/api/auth/github"
        assert "Domain" not in c.attrs
        assert c.line.endswith("; HttpOnly; Secure; SameSite=None")


@pytest.mark.parametrize(
    ("cookies", "cleared"),
    [
        ({}, []),
        ({"github-refresh-token": "t"}, []),
        ({"github-granted-scope": "repo"}, ["github-granted-scope"]),
        ({"github-granted-scope": ""}, ["github-granted-scope"]),
        ({"github-granted-scope-0": "repo"}, ["github-granted-scope-0"]),
    ],
)
def test_clear_granted_scopes_only_clears_what_the_request_has(
    cookies: dict[str, str], cleared: list[str]
) -> None:
    m = manager()
    lines = parse(m.clear_granted_scopes(app_origin=None, request_cookies=cookies))
    assert [c.name for c in lines] == cleared
    assert all(c.max_age == 0 and c.attrs["Path"] == "/api/auth/github" for c in lines)
