"""Redirect-flow ``redirectUrl`` with non-ASCII characters: the callback's ``Location``
is the URL as a browser sends it (UTF-8 percent-encoded), never a 500 (issue 15, item 12:
``http://localhost:3000/€`` failed with a latin-1 encoding error after the code exchange)."""

from __future__ import annotations

from urllib.parse import unquote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.app_factory import JarlessClient
from tests.fakes.stub_provider import VALID_CODE

from .helpers import start

FRAME = "/api/auth/stub/handler/frame"


def _callback(client: JarlessClient, redirect_url: str) -> str:
    started = start(client, flow="redirect", redirectUrl=redirect_url)
    response = client.get(
        FRAME, params={"code": VALID_CODE, "state": started.state}, headers=started.cookie_header
    )
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert isinstance(location, str)
    return location


def test_a_non_ascii_path_is_percent_encoded_as_browsers_do(client: JarlessClient) -> None:
    assert _callback(client, "http://localhost:3000/€") == "http://localhost:3000/%E2%82%AC"
    assert _callback(client, "http://localhost:3000/a?q=ü#é") == (
        "http://localhost:3000/a?q=%C3%BC#%C3%A9"
    )
    # What is ASCII already stays as it was, escapes included.
    assert _callback(client, "http://localhost:3000/a%20b?x=1&y=%E2%82%AC#top") == (
        "http://localhost:3000/a%20b?x=1&y=%E2%82%AC#top"
    )


# Any character but surrogates (not encodable), '%' (kept as is, so the round trip below
# would not hold) and what a URL parser splits on or refuses (controls, space, '\\').
_PART = st.text(
    st.characters(
        exclude_categories=("Cs", "Cc"),
        exclude_characters="% \\#?\x7f",
    ),
    max_size=12,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=_PART, query=_PART, fragment=_PART)
def test_any_redirect_url_comes_back_ascii_and_unchanged_in_meaning(
    client: JarlessClient, path: str, query: str, fragment: str
) -> None:
    url = f"http://localhost:3000/{path}?{query}#{fragment}"
    location = _callback(client, url)
    assert location.isascii()
    assert unquote(location) == url
