"""app.oauth.web_message: the popup page.

Backstage: ``plugins/auth-node/src/flow/sendWebMessageResponse.ts``
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any
from urllib.parse import unquote

import pytest

from app.oauth.web_message import render_web_message

AUTH_RESPONSE = re.compile(r"var authResponse = decodeURIComponent\('([^']*)'\);")
ORIGIN = re.compile(r"var origin = decodeURIComponent\('([^']*)'\);")
APP = "http://localhost:3000"

PAYLOADS: list[dict[str, Any]] = [
    {"type": "authorization_response", "response": {"providerInfo": {"accessToken": "a.b.c"}}},
    {"type": "authorization_response", "error": {"name": "Error", "message": "x"}},
    {"type": "authorization_response", "response": {"profile": {"displayName": "O'Brien"}}},
    {"type": "x", "v": "</script><script>alert(1)</script>"},
    {"type": "x", "v": "');alert(1);//"},
    {"type": "x", "v": "<!-- <script>"},
    {"type": "x", "v": '"quotes" and \\backslashes\\ and %27 and %3C'},
    {"type": "x", "v": "line\u2028sep\u2029para\nnew\r\x00nul"},
    {"type": "x", "v": "ünïcödé ✓ 🎉 日本"},
    {"type": "x", "nested": [1, 2.5, None, True, {"k": "'<>&"}]},
]


def script_of(body: bytes) -> str:
    text = body.decode()
    assert text.startswith("<html><body><script>")
    assert text.endswith("</script></body></html>")
    assert text.count("<script>") == 1
    assert text.count("</script>") == 1
    return text[len("<html><body><script>") : -len("</script></body></html>")]


@pytest.mark.parametrize("message", PAYLOADS)
def test_csp_hash_is_that_of_the_exact_script(message: dict[str, Any]) -> None:
    page = render_web_message(message, APP)
    script = script_of(page.body)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert page.headers["Content-Security-Policy"] == f"script-src 'sha256-{digest}'"


@pytest.mark.parametrize("message", PAYLOADS)
def test_payload_cannot_break_out_and_round_trips(message: dict[str, Any]) -> None:
    script = script_of(render_web_message(message, APP).body)
    m = AUTH_RESPONSE.search(script)
    assert m is not None
    embedded = m.group(1)
    for ch in "'<>\"\\\n\r\u2028\u2029":
        assert ch not in embedded
    assert embedded.isascii()
    assert json.loads(unquote(embedded)) == message


@pytest.mark.parametrize(
    "origin", [APP, "https://app.example.com", "https://x.example.com:8443", "https://a'b<c"]
)
def test_origin_is_embedded_safely(origin: str) -> None:
    script = script_of(render_web_message({"type": "x"}, origin).body)
    m = ORIGIN.search(script)
    assert m is not None
    assert "'" not in m.group(1)
    assert "<" not in m.group(1)
    assert unquote(m.group(1)) == origin


def test_config_info_to_any_window_then_response_to_the_app_origin_only() -> None:
    script = script_of(render_web_message({"type": "authorization_response"}, APP).body)
    config_info = "{'type': 'config_info', 'targetOrigin': origin}"
    assert f"var originInfo = {config_info};" in script
    first = script.index("postMessage(originInfo, '*')")
    second = script.index("postMessage(JSON.parse(authResponse), origin)")
    assert first < second
    # The real message is posted nowhere else.
    assert script.count("postMessage(") == 2
    assert script.count("'*'") == 1
    assert "(window.opener || window.parent)" in script
    assert "window.close()" in script


def test_headers() -> None:
    headers = render_web_message({"type": "x"}, APP).headers
    assert headers["X-Frame-Options"] == "sameorigin"
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Content-Type"].startswith("text/html")
    assert headers["Content-Security-Policy"].startswith("script-src 'sha256-")


def test_different_payloads_give_different_hashes() -> None:
    a = render_web_message({"type": "a"}, APP).headers["Content-Security-Policy"]
    b = render_web_message({"type": "b"}, APP).headers["Content-Security-Policy"]
    c = render_web_message({"type": "a"}, "https://other.example.com")
    assert a != b
    assert a != c.headers["Content-Security-Policy"]
