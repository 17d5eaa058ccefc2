"""The cookies of Backstage's OAuth flow, the only module that writes them.

- ``<id>-nonce``: set by /start; Max-Age 600 s; Path ``<base>/handler``.
- ``<id>-refresh-token``: set by the callback and by refresh when the token rotates;
  Max-Age ``sessionDuration``, else 1000 days; Path ``<base>``.
- ``<id>-granted-scope``: scope-persisting providers only; like the refresh token.

``<base>`` is the callback URL's path without ``/handler/frame`` (``/api/auth/<id>``).
All are HttpOnly, host-only; ``Secure`` iff the callback URL is https; ``SameSite=None``
only when the app's host differs from the backend's and the cookie is Secure, else Lax.
Values are ``encodeURIComponent``-encoded; values over 4000 characters are split into
``<name>-0``, ``<name>-1``, ... Before each write a ``Domain=<backend host>`` variant is
expired, erasing cookies that old Backstage versions set with a Domain.
(``plugins/auth-node/src/oauth/OAuthCookieManager.ts``)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate
from urllib.parse import quote, unquote, urlsplit

from app.core.clock import Clock
from app.oauth.origins import Origin

NONCE_MAX_AGE_SECONDS = 600
DEFAULT_SESSION_MAX_AGE_SECONDS = 1000 * 24 * 60 * 60
MAX_COOKIE_SIZE_CHARS = 4000
# encodeURIComponent leaves these unescaped.
_URI_COMPONENT_SAFE = "!'()*-._~"


def encode_cookie_value(value: str) -> str:
    return quote(value, safe=_URI_COMPONENT_SAFE)


def decode_cookie_value(value: str) -> str:
    # cookie-parser falls back to the raw value when decoding fails; unquote never fails.
    return unquote(value)


@dataclass(frozen=True)
class CookieAttributes:
    path: str
    secure: bool
    same_site: str  # "Lax" or "None"
    domain: str | None = None


class OAuthCookieManager:
    def __init__(
        self,
        *,
        provider_id: str,
        callback_url: str,
        default_app_origin: Origin,
        session_max_age_seconds: int | None,
        clock: Clock,
    ) -> None:
        parts = urlsplit(callback_url)
        self.provider_id = provider_id
        self._callback_host = (parts.hostname or "").lower()
        self._secure = parts.scheme == "https"
        path = parts.path.rstrip("/")
        suffix = f"{provider_id}/handler/frame"
        if path.endswith(suffix):
            self.base_path = path[: -len("/handler/frame")]
        else:
            self.base_path = f"{path}/{provider_id}"
        self._default_app_origin = default_app_origin
        self._session_max_age = session_max_age_seconds or DEFAULT_SESSION_MAX_AGE_SECONDS
        self._clock = clock
        self.nonce_name = f"{provider_id}-nonce"
        self.refresh_token_name = f"{provider_id}-refresh-token"
        self.granted_scope_name = f"{provider_id}-granted-scope"

    @property
    def session_max_age_seconds(self) -> int:
        return self._session_max_age

    def attributes(self, *, path: str, app_origin: Origin | None) -> CookieAttributes:
        origin = app_origin or self._default_app_origin
        cross_site = origin.host != self._callback_host
        same_site = "None" if cross_site and self._secure else "Lax"
        return CookieAttributes(path=path, secure=self._secure, same_site=same_site)

    # -- serialization ---------------------------------------------------------------

    def _line(self, name: str, value: str, max_age: int, attrs: CookieAttributes) -> str:
        expires = formatdate(self._clock.now() + max_age if max_age > 0 else 0, usegmt=True)
        out = [f"{name}={encode_cookie_value(value)}", f"Max-Age={max(max_age, 0)}"]
        if attrs.domain:
            out.append(f"Domain={attrs.domain}")
        out += [f"Path={attrs.path}", f"Expires={expires}", "HttpOnly"]
        if attrs.secure:
            out.append("Secure")
        out.append(f"SameSite={attrs.same_site}")
        return "; ".join(out)

    def _legacy_clear(self, name: str, attrs: CookieAttributes) -> str:
        legacy = CookieAttributes(
            path=self.base_path,
            secure=attrs.secure,
            same_site=attrs.same_site,
            domain=self._callback_host,
        )
        return self._line(name, "", 0, legacy)

    def _set(
        self,
        name: str,
        value: str,
        max_age: int,
        attrs: CookieAttributes,
        request_cookies: Mapping[str, str],
    ) -> list[str]:
        lines: list[str] = []
        encoded_len = len(encode_cookie_value(value))
        if encoded_len <= MAX_COOKIE_SIZE_CHARS:
            lines.append(self._legacy_clear(name, attrs))
            lines.append(self._line(name, value, max_age, attrs))
            lines += [self._line(c, "", 0, attrs) for c in _existing_chunks(name, request_cookies)]
            return lines
        chunks = _chunk(value)
        for i, chunk in enumerate(chunks):
            lines.append(self._legacy_clear(f"{name}-{i}", attrs))
            lines.append(self._line(f"{name}-{i}", chunk, max_age, attrs))
        # Chunks beyond the new count, and the unchunked form, are stale now.
        for stale in _existing_chunks(name, request_cookies)[len(chunks) :]:
            lines.append(self._line(stale, "", 0, attrs))
        if name in request_cookies:
            lines.append(self._line(name, "", 0, attrs))
        return lines

    def _clear(
        self, name: str, attrs: CookieAttributes, request_cookies: Mapping[str, str]
    ) -> list[str]:
        names = ([name] if name in request_cookies else []) + _existing_chunks(
            name, request_cookies
        )
        return [self._line(n, "", 0, attrs) for n in names]

    # -- the flow's cookies ----------------------------------------------------------

    def set_nonce(self, nonce: str, *, app_origin: Origin | None) -> list[str]:
        attrs = self.attributes(path=f"{self.base_path}/handler", app_origin=app_origin)
        return [
            self._legacy_clear(self.nonce_name, attrs),
            self._line(self.nonce_name, nonce, NONCE_MAX_AGE_SECONDS, attrs),
        ]

    def clear_nonce(self, *, app_origin: Origin | None) -> list[str]:
        attrs = self.attributes(path=f"{self.base_path}/handler", app_origin=app_origin)
        return [self._line(self.nonce_name, "", 0, attrs)]

    def get_nonce(self, request_cookies: Mapping[str, str]) -> str | None:
        raw = request_cookies.get(self.nonce_name)
        return decode_cookie_value(raw) if raw else None

    def set_refresh_token(
        self, token: str, *, app_origin: Origin | None, request_cookies: Mapping[str, str]
    ) -> list[str]:
        attrs = self.attributes(path=self.base_path, app_origin=app_origin)
        return self._set(
            self.refresh_token_name, token, self._session_max_age, attrs, request_cookies
        )

    def get_refresh_token(self, request_cookies: Mapping[str, str]) -> str | None:
        chunks = _existing_chunks(self.refresh_token_name, request_cookies)
        if chunks:
            return "".join(decode_cookie_value(request_cookies[c]) for c in chunks)
        raw = request_cookies.get(self.refresh_token_name)
        return decode_cookie_value(raw) if raw else None

    def clear_refresh_token(
        self, *, app_origin: Origin | None, request_cookies: Mapping[str, str]
    ) -> list[str]:
        attrs = self.attributes(path=self.base_path, app_origin=app_origin)
        return self._clear(self.refresh_token_name, attrs, request_cookies)

    def set_granted_scopes(
        self, scope: str, *, app_origin: Origin | None, request_cookies: Mapping[str, str]
    ) -> list[str]:
        attrs = self.attributes(path=self.base_path, app_origin=app_origin)
        return self._set(
            self.granted_scope_name, scope, self._session_max_age, attrs, request_cookies
        )

    def get_granted_scopes(self, request_cookies: Mapping[str, str]) -> str | None:
        raw = request_cookies.get(self.granted_scope_name)
        return decode_cookie_value(raw) if raw is not None else None

    def clear_granted_scopes(
        self, *, app_origin: Origin | None, request_cookies: Mapping[str, str]
    ) -> list[str]:
        attrs = self.attributes(path=self.base_path, app_origin=app_origin)
        return self._clear(self.granted_scope_name, attrs, request_cookies)


def _chunk(value: str) -> list[str]:
    # Chunk the encoded form's source so each encoded chunk stays under the limit:
    # splitting raw characters keeps percent-escapes intact.
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for ch in value:
        enc = len(encode_cookie_value(ch))
        if size + enc > MAX_COOKIE_SIZE_CHARS:
            chunks.append("".join(current))
            current, size = [], 0
        current.append(ch)
        size += enc
    if current:
        chunks.append("".join(current))
    return chunks


def _existing_chunks(name: str, request_cookies: Mapping[str, str]) -> list[str]:
    names: list[str] = []
    i = 0
    while f"{name}-{i}" in request_cookies:
        names.append(f"{name}-{i}")
        i += 1
    return names
