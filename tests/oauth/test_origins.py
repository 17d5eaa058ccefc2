"""app.oauth.origins: origin parsing and the app-origin allow-list.

Backstage: ``plugins/auth-backend/src/providers/router.ts``
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core.errors import InputError, NotAllowedError
from app.oauth.origins import Origin, OriginFilter, OriginPattern, ascii_url, parse_origin

APP = "https://app.example.com"


def o(url: str) -> Origin:
    parsed = parse_origin(url)
    assert parsed is not None, url
    return parsed


def app_filter(*patterns: str) -> OriginFilter:
    return OriginFilter(o(APP), patterns)


WILDCARD = app_filter("https://*.example.com")
APP_ONLY = app_filter()


# -- parse_origin ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://app.example.com", Origin("https", "app.example.com", None)),
        ("HTTPS://APP.Example.COM", Origin("https", "app.example.com", None)),
        ("https://app.example.com:443", Origin("https", "app.example.com", None)),
        ("https://app.example.com:0443", Origin("https", "app.example.com", None)),
        ("http://app.example.com:80/", Origin("http", "app.example.com", None)),
        ("http://localhost:3000", Origin("http", "localhost", 3000)),
        ("https://app.example.com:80", Origin("https", "app.example.com", 80)),
        ("http://app.example.com:443", Origin("http", "app.example.com", 443)),
        ("https://app.example.com/path/to?q=1#frag", Origin("https", "app.example.com", None)),
        ("https://app.example.com/evil.com@x", Origin("https", "app.example.com", None)),
        ("https://app.example.com#@evil.com", Origin("https", "app.example.com", None)),
        ("https://app.example.com?@evil.com", Origin("https", "app.example.com", None)),
        ("https://bücher.example.com", Origin("https", "xn--bcher-kva.example.com", None)),
        ("https://BÜCHER.example.com", Origin("https", "xn--bcher-kva.example.com", None)),
        ("https://аpp.example.com", Origin("https", "xn--pp-6kc.example.com", None)),
        ("https://app.ｅxample.com", Origin("https", "app.example.com", None)),  # full-width e
        ("https://app。example.com", Origin("https", "app.example.com", None)),  # ideographic dot
        ("http://127.0.0.1:7007", Origin("http", "127.0.0.1", 7007)),
        ("http://[::1]:3000", Origin("http", "::1", 3000)),
    ],
)
def test_parse_origin_normalises(url: str, expected: Origin) -> None:
    assert parse_origin(url) == expected


@pytest.mark.parametrize(
    ("origin", "text"),
    [
        (Origin("https", "app.example.com", None), "https://app.example.com"),
        (Origin("http", "localhost", 3000), "http://localhost:3000"),
        (Origin("http", "::1", 3000), "http://[::1]:3000"),
    ],
)
def test_origin_str(origin: Origin, text: str) -> None:
    assert str(origin) == text


@pytest.mark.parametrize(
    "url",
    [
        "",
        "app.example.com",
        "/relative",
        "//app.example.com",
        "ftp://app.example.com",
        "javascript:alert(1)",
        "data:text/html,hi",
        "file:///etc/passwd",
        "https://",
        "https:app.example.com",
        "https:/app.example.com",
        "https://user:pw@app.example.com",
        "https://app.example.com@evil.com",
        "https://app.example.com:99999",
        "https://app.example.com:-1",
        "https://app.example.com:+443",
        "https://app.example.com:abc",
        "https://app..example.com",
        "https://.example.com",
        " https://app.example.com",
        "https://app.example.com ",
        "https://app.exa\tmple.com",
        "https://app.example.com\n",
        "https:\\\\app.example.com",
        "https://app.example.com\\",
        "https://" + "a" * 64 + ".example.com",
    ],
)
def test_parse_origin_refuses(url: str) -> None:
    assert parse_origin(url) is None


# -- patterns ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "allowed", "refused"),
    [
        (
            "https://*.example.com",
            ["https://app.example.com", "https://X-1.Example.com:443/p", "https://a.example.com"],
            [
                "https://example.com",
                "http://app.example.com",
                "https://app.example.com:8443",
                "https://a.b.example.com",
                "https://app.example.org",
                "https://app.example.com.evil.com",
            ],
        ),
        (
            "http://localhost:*",
            ["http://localhost:3000", "http://localhost:8080", "http://LOCALHOST:1"],
            ["https://localhost:3000", "http://localhost.evil.com:3000", "http://127.0.0.1:3000"],
        ),
        (
            "https://{a,b}.example.com",
            ["https://a.example.com", "https://b.example.com"],
            ["https://c.example.com", "https://ab.example.com", "https://a.b.example.com"],
        ),
        (
            "https://app?.example.com",
            ["https://app1.example.com", "https://appx.example.com"],
            ["https://app.example.com", "https://app12.example.com"],
        ),
        (
            "https://*.example.com:8443",
            ["https://app.example.com:8443"],
            ["https://app.example.com", "https://app.example.com:443"],
        ),
        ("https://*.EXAMPLE.com", ["https://app.example.com"], ["https://app.example.org"]),
        ("http://localhost:3000/", ["http://localhost:3000"], ["http://localhost:3001"]),
        ("https://{a,b}.example.{com,org}", ["https://b.example.org"], ["https://c.example.org"]),
    ],
)
def test_extra_allowed_origin_patterns(
    pattern: str, allowed: list[str], refused: list[str]
) -> None:
    f = OriginFilter(o("https://portal.internal"), [pattern])
    for url in allowed:
        assert f.is_allowed(o(url)), url
        assert f.check_app_origin(url) == o(url)
    for url in refused:
        assert not f.is_allowed(o(url)), url


@pytest.mark.parametrize("pattern", ["nope", "*.example.com", "https://", "https://a/b", ""])
def test_invalid_patterns(pattern: str) -> None:
    with pytest.raises(ValueError):
        OriginPattern.compile(pattern)


def test_app_origin_is_always_allowed() -> None:
    assert APP_ONLY.is_allowed(o("https://APP.example.com:443/x"))
    assert not APP_ONLY.is_allowed(o("https://other.example.com"))


# -- check_* messages --------------------------------------------------------------------


def test_check_app_origin_returns_the_normalised_origin() -> None:
    assert APP_ONLY.check_app_origin("HTTPS://App.Example.com:443/x") == o(APP)


@pytest.mark.parametrize(
    "raw", ["", "not a url", "//app.example.com", "https://", "app.example.com"]
)
def test_check_app_origin_unparsable(raw: str) -> None:
    with pytest.raises(InputError, match=r"^App origin is invalid, failed to parse$") as info:
        APP_ONLY.check_app_origin(raw)
    assert info.value.status_code == 400


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        # Parses, but userinfo is refused outright (the "allowed@evil" family of tricks).
        ("https://a@app.example.com", "https://a@app.example.com"),
        # No tuple origin: WHATWG serializes it as "null", as Backstage's message shows.
        ("javascript:alert(1)", "null"),
        ("ftp://app.example.com", "null"),
    ],
)
def test_check_app_origin_parsable_but_refused(raw: str, shown: str) -> None:
    with pytest.raises(NotAllowedError, match=rf"^Origin '{re.escape(shown)}' is not allowed$"):
        APP_ONLY.check_app_origin(raw)


def test_check_app_origin_unparsable_with_custom_error_class() -> None:
    with pytest.raises(NotAllowedError, match=r"^App origin is invalid, failed to parse$"):
        APP_ONLY.check_app_origin("nope", invalid=NotAllowedError)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("https://evil.com", "https://evil.com"),
        ("https://EVIL.com:443/path?q", "https://evil.com"),
        ("http://app.example.com", "http://app.example.com"),
        ("https://app.example.com:8443", "https://app.example.com:8443"),
    ],
)
def test_check_app_origin_not_allowed(raw: str, shown: str) -> None:
    with pytest.raises(NotAllowedError) as info:
        APP_ONLY.check_app_origin(raw)
    assert info.value.message == f"Origin '{shown}' is not allowed"
    assert info.value.status_code == 403


@pytest.mark.parametrize(
    "raw", [APP, f"{APP}/", f"{APP}/done?x=1#y", "https://APP.example.com:443/cb"]
)
def test_check_redirect_url_returns_it_unchanged(raw: str) -> None:
    assert APP_ONLY.check_redirect_url(raw) == raw


@pytest.mark.parametrize("raw", [None, ""])
def test_check_redirect_url_missing(raw: str | None) -> None:
    with pytest.raises(InputError, match=r"^No redirectUrl provided in request query parameters$"):
        APP_ONLY.check_redirect_url(raw)


@pytest.mark.parametrize(
    "raw",
    ["not a url", "/relative", "//evil.com", "https://app.example.com/\tx", "https:\\\\evil.com"],
)
def test_check_redirect_url_unparsable(raw: str) -> None:
    with pytest.raises(InputError, match=r"^Redirect URL is invalid, failed to parse$"):
        APP_ONLY.check_redirect_url(raw)


def test_check_redirect_url_unparsable_custom_class() -> None:
    with pytest.raises(NotAllowedError, match=r"^Redirect URL is invalid, failed to parse$"):
        APP_ONLY.check_redirect_url("nope", invalid=NotAllowedError)
    with pytest.raises(NotAllowedError, match=r"^No redirectUrl provided in request query"):
        APP_ONLY.check_redirect_url(None, invalid=NotAllowedError)


@pytest.mark.parametrize(
    "raw", ["https://evil.com/cb", "javascript:alert(1)", "http://app.example.com/cb"]
)
def test_check_redirect_url_not_allowed(raw: str) -> None:
    with pytest.raises(NotAllowedError, match=r"^Redirect URL is not an allowed origin$"):
        APP_ONLY.check_redirect_url(raw)


def test_check_header_origin() -> None:
    APP_ONLY.check_header_origin(None)
    APP_ONLY.check_header_origin(APP)
    WILDCARD.check_header_origin("https://other.example.com")
    for raw in ["https://evil.com", "null", "", "https://app.example.com@evil.com"]:
        with pytest.raises(NotAllowedError) as info:
            APP_ONLY.check_header_origin(raw)
        # The raw header value is echoed, as Backstage does.
        assert info.value.message == f"Origin '{raw}' is not allowed"


# -- open-redirect / origin-trick corpus ------------------------------------------------------

OPEN_REDIRECT_CORPUS = [
    "",
    "null",
    "evil.com",
    "//evil.com",
    "///evil.com",
    "/\\evil.com",
    "\\\\evil.com",
    "https:evil.com",
    "https:/evil.com",
    "https:\\\\evil.com",
    "https:/\\evil.com",
    "https://evil.com",
    "HTTPS://EVIL.COM",
    "http://app.example.com",  # scheme downgrade
    # userinfo
    "https://app.example.com@evil.com",
    "https://app.example.com:443@evil.com",
    "https://app.example.com:@evil.com",
    "https://user@app.example.com@evil.com",
    "https://evil.com\\@app.example.com",
    "https://evil.com:443\\@app.example.com",
    "https://app.example.com%2F@evil.com",
    "https://app.example.com%40evil.com",
    "https://app.example.com%2F%2F@evil.com",
    # suffix / prefix confusions
    "https://evil.com/.example.com",
    "https://evil.com?.example.com",
    "https://evil.com#.example.com",
    "https://evil.com%2F.example.com",
    "https://evil.com%23.example.com",
    "https://app.example.com.evil.com",
    "https://app.example.com。evil.com",
    "https://evilexample.com",
    "https://example.com",
    "https://.example.com",
    "https://a.b.example.com",
    "https://app.example.com.",
    "https://app.example.co",
    "https://app.example.com.evil.com:443",
    # whitespace and control characters
    " https://app.example.com",
    "https://app.example.com ",
    "https://app.example.com evil.com",
    "https://app.example.com\t.evil.com",
    "https://app.example.com\n.evil.com",
    "https://evil.com\r\n.example.com",
    "https://app.example.com\x00.evil.com",
    "\thttps://evil.com",
    # other schemes
    "javascript:alert(1)",
    "javascript://app.example.com/%0aalert(1)",
    "JaVaScRiPt:alert(document.domain)",
    "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "ftp://app.example.com",
    "wss://app.example.com",
    # homographs of the registrable domain
    "https://app.exаmple.com",  # Cyrillic a in "example"
    "https://app.example.cоm",  # Cyrillic o in "com"
    # ports
    "https://app.example.com:444",
    "https://app.example.com:8443",
    "https://app.example.com:80",
    "https://app.example.com:65536",
    "https://app.example.com:443:443",
    # IP literals
    "https://127.0.0.1",
    "https://[::1]",
    "https://[::ffff:127.0.0.1]",
]


@pytest.mark.parametrize("raw", OPEN_REDIRECT_CORPUS)
def test_open_redirect_corpus_is_refused(raw: str) -> None:
    parsed = parse_origin(raw)
    assert parsed is None or not WILDCARD.is_allowed(parsed)
    with pytest.raises((InputError, NotAllowedError)):
        WILDCARD.check_app_origin(raw)
    with pytest.raises((InputError, NotAllowedError)):
        WILDCARD.check_redirect_url(raw)
    with pytest.raises(NotAllowedError):
        WILDCARD.check_header_origin(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "https://app.example.com",
        "https://APP.EXAMPLE.COM",
        "HtTpS://App.Example.Com/",
        "https://app.example.com:443",
        "https://app.example.com:0443",  # WHATWG reads the port as 443 too
        "https://app.example.com/cb?next=https://evil.com",
        "https://app.example.com#@evil.com",
        "https://other.example.com/x",
        "https://Other.Example.Com:443",
    ],
)
def test_variants_that_normalise_to_allowed_are_allowed(raw: str) -> None:
    assert WILDCARD.check_redirect_url(raw) == raw
    WILDCARD.check_app_origin(raw)
    WILDCARD.check_header_origin(raw)


def test_idn_homograph_of_the_app_host() -> None:
    # Cyrillic "а": a different host from app.example.com, refused as the app origin.
    homograph = "https://аpp.example.com"
    assert parse_origin(homograph) != o(APP)
    with pytest.raises(NotAllowedError, match="^Origin 'https://xn--pp-6kc.example.com' is not"):
        APP_ONLY.check_app_origin(homograph)
    with pytest.raises(NotAllowedError):
        APP_ONLY.check_redirect_url(homograph)
    with pytest.raises(NotAllowedError):
        APP_ONLY.check_header_origin(homograph)
    # Under "*.example.com" it is one more subdomain of example.com (as in Backstage, which
    # matches new URL(x).origin, the punycode form): example.com's owner controls it.
    assert WILDCARD.is_allowed(o(homograph))


@pytest.mark.parametrize(
    "raw",
    [
        "https://a%2eb.example.com",  # browser host: a.b.example.com
        "https://evil%E3%80%82com.example.com",  # browser host: evil.com.example.com
        "https://evil%2Ecom%2F.example.com",  # new URL() throws: "/" in the host
        "https://a|b.example.com",  # forbidden host code point
        "https://a<b.example.com",
        "https://a^b.example.com",
    ],
)
def test_wildcard_refuses_hosts_browsers_decode_or_reject(raw: str) -> None:
    with pytest.raises((InputError, NotAllowedError)):
        WILDCARD.check_redirect_url(raw)


@pytest.mark.parametrize(
    ("app", "raw"),
    [
        ("https://strasse.example", "https://straße.example/cb"),  # browser: xn--strae-oqa
        ("https://xn--4xaa.example", "https://σς.example/cb"),  # browser: xn--4xa203s
    ],
)
def test_idna_deviation_characters_are_not_folded(app: str, raw: str) -> None:
    f = OriginFilter(o(app))
    with pytest.raises((InputError, NotAllowedError)):
        f.check_redirect_url(raw)


# -- property: "*.example.com" is exactly the one-label https subdomains ---------------------

_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?", fullmatch=True)
_SUFFIXES = ["example.com", "example.org", "evil.com", "examplexcom", "com", "example.com.evil.com"]


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(["https", "http", "HTTPS"]),
    labels=st.lists(_LABEL, min_size=0, max_size=3),
    suffix=st.sampled_from(_SUFFIXES),
    port=st.sampled_from([None, 443, 80, 8443, 444]),
    upper=st.booleans(),
    path=st.sampled_from(["", "/", "/cb?x=1", "#frag"]),
)
def test_wildcard_matches_exactly_one_label_https_subdomains(
    scheme: str, labels: list[str], suffix: str, port: int | None, upper: bool, path: str
) -> None:
    host = ".".join([*labels, suffix])
    if upper:
        host = host.upper()
    url = f"{scheme}://{host}" + (f":{port}" if port is not None else "") + path
    expected = (
        scheme.lower() == "https"
        and port in (None, 443)
        and len(labels) == 1
        and suffix == "example.com"
    )
    origin = parse_origin(url)
    assert origin is not None
    assert WILDCARD.is_allowed(origin) is expected
    if expected:
        assert WILDCARD.check_redirect_url(url) == url
    else:
        with pytest.raises(NotAllowedError):
            WILDCARD.check_redirect_url(url)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_allowed_wildcard_origins_are_one_label_under_example_com(label: str) -> None:
    # Whatever text is put in front, an allowed origin is https, default port and exactly
    # one label (no dot) in front of ".example.com".
    origin = parse_origin(f"https://{label}.example.com")
    if origin is not None and WILDCARD.is_allowed(origin):
        assert origin.scheme == "https"
        assert origin.port is None
        front = origin.host.removesuffix(".example.com")
        assert front != origin.host
        assert front and "." not in front


def test_ascii_url_is_what_a_browser_requests() -> None:
    assert ascii_url("https://app.example.com/a?b#c") == "https://app.example.com/a?b#c"
    assert ascii_url("http://bücher.example:8080/ä?€") == (
        "http://xn--bcher-kva.example:8080/%C3%A4?%E2%82%AC"
    )
