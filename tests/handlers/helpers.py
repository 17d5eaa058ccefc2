"""Wire-level helpers for the handler tests (independent of app.oauth's own codecs)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

import httpx2

XRW = {"X-Requested-With": "XMLHttpRequest"}
APP_ORIGIN = "http://localhost:3000"

_AUTH_RESPONSE = re.compile(r"var authResponse = decodeURIComponent\('([^']*)'\);")
_ORIGIN = re.compile(r"var origin = decodeURIComponent\('([^']*)'\);")
_SCRIPT = re.compile(r"^<html><body><script>(.*)</script></body></html>$", re.S)


@dataclass
class SetCookie:
    raw: str
    name: str
    value: str  # as sent (still URI-encoded)
    attributes: list[tuple[str, str | None]] = field(default_factory=list)

    def attr(self, key: str) -> str | None:
        for k, v in self.attributes:
            if k.lower() == key.lower():
                return v
        raise KeyError(key)

    def has(self, key: str) -> bool:
        return any(k.lower() == key.lower() for k, _ in self.attributes)

    @property
    def attribute_names(self) -> list[str]:
        return [k for k, _ in self.attributes]


def set_cookies(response: httpx2.Response) -> list[SetCookie]:
    out = []
    for raw in response.headers.get_list("set-cookie"):
        first, *rest = raw.split("; ")
        name, _, value = first.partition("=")
        attrs: list[tuple[str, str | None]] = []
        for part in rest:
            key, eq, val = part.partition("=")
            attrs.append((key, val if eq else None))
        out.append(SetCookie(raw, name, value, attrs))
    return out


def http_date(seconds: float) -> str:
    return formatdate(seconds, usegmt=True)


def decode_state(state: str) -> list[tuple[str, str]]:
    """Backstage's state: lower-case hex of a form-urlencoded record (field order kept)."""
    assert re.fullmatch(r"(?:[0-9a-f]{2})+", state), state
    return parse_qsl(bytes.fromhex(state).decode(), keep_blank_values=True)


def encode_state(fields: list[tuple[str, str]] | dict[str, str]) -> str:
    return urlencode(fields).encode().hex()


def location_query(response: httpx2.Response) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(response.headers["location"]).query))


@dataclass
class Started:
    state: str
    nonce_cookie: str  # the cookie value as sent by the server (URI-encoded)
    response: httpx2.Response
    provider: str

    @property
    def cookie_header(self) -> dict[str, str]:
        return {"Cookie": f"{self.provider}-nonce={self.nonce_cookie}"}


def start(client: Any, provider: str = "stub", **params: str) -> Started:
    query = {"env": "development", **params}
    response = client.get(f"/api/auth/{provider}/start", params=query)
    assert response.status_code == 302, response.text
    nonce = [c for c in set_cookies(response) if c.name == f"{provider}-nonce" and c.value]
    assert len(nonce) == 1
    return Started(location_query(response)["state"], nonce[0].value, response, provider)


def page(response: httpx2.Response) -> tuple[dict[str, Any], str]:
    """The popup page's message and target origin; also checks the CSP hash."""
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    body = response.text
    script = _SCRIPT.fullmatch(body)
    assert script, body
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    assert response.headers["content-security-policy"] == f"script-src 'sha256-{digest}'"
    assert response.headers["x-frame-options"] == "sameorigin"
    data = _AUTH_RESPONSE.search(body)
    origin = _ORIGIN.search(body)
    assert data and origin
    return json.loads(unquote(data.group(1))), unquote(origin.group(1))


def error_body(name: str, message: str, method: str, url: str, status: int) -> dict[str, Any]:
    return {
        "error": {"name": name, "message": message},
        "request": {"method": method, "url": url},
        "response": {"statusCode": status},
    }


def assert_json_error(
    response: httpx2.Response, status: int, name: str, message: str, url: str | None = None
) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body["error"] == {"name": name, "message": message}
    assert body["response"] == {"statusCode": status}
    assert body["request"]["method"] == response.request.method
    if url is not None:
        assert body["request"]["url"] == url


def sign_in(client: Any, provider: str = "stub", **start_params: str) -> dict[str, str]:
    """A whole popup sign-in; the cookies a browser would now hold for /api/auth/<id>."""
    started = start(client, provider, **start_params)
    response = client.get(
        f"/api/auth/{provider}/handler/frame",
        params={"code": "valid-code", "state": started.state},
        headers=started.cookie_header,
    )
    assert response.status_code == 200, response.text
    jar: dict[str, str] = {}
    for cookie in set_cookies(response):
        if cookie.has("Domain") or cookie.name.endswith("-nonce"):
            continue
        if cookie.value:
            jar[cookie.name] = cookie.value
        else:
            jar.pop(cookie.name, None)
    assert f"{provider}-refresh-token" in jar or f"{provider}-refresh-token-0" in jar
    return jar


def cookie_header(jar: dict[str, str]) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())}
