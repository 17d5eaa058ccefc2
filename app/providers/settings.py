"""Config models shared by providers (each provider file extends them)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from app.config.validation import Lenient
from app.core.durations import parse_duration_seconds
from app.core.timeouts import OUTBOUND_TIMEOUT_SECONDS
from app.oauth.scopes import split_scope


class SignInSettings(Lenient):
    resolvers: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("resolvers")
    @classmethod
    def _names(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, item in enumerate(value):
            if not isinstance(item.get("resolver"), str):
                raise ValueError(f"resolvers[{i}] needs a 'resolver' name")
        return value


class KeyFetchSettings(Lenient):
    """``timeout`` of a proxy provider (``auth.providers.<id>.timeout``; ours, Backstage's
    proxy providers have none): the limit for each fetch of its signing keys (and
    cfaccess's identity), the whole call, connecting included. Default 10 seconds."""

    timeout: Any = None

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        if value is not None and parse_duration_seconds(value) <= 0:
            raise ValueError("must be positive")
        return value

    @property
    def timeout_seconds(self) -> float:
        if self.timeout is None:
            return OUTBOUND_TIMEOUT_SECONDS
        return parse_duration_seconds(self.timeout)


class OAuthEnvSettings(Lenient):
    """Options every OAuth provider environment reads (``auth.providers.<id>.<env>``)."""

    clientId: str = Field(min_length=1)
    clientSecret: str = Field(min_length=1)
    callbackUrl: str | None = None
    sessionDuration: Any = None
    additionalScopes: str | list[str] | None = None
    signIn: SignInSettings | None = None
    # Ours: where the identity provider sends the browser after RP-initiated logout;
    # its origin must be an allowed app origin.
    postLogoutRedirectUri: str | None = None
    # oidc's key in Backstage, for every provider here: the whole of one sign-in or one
    # refresh (token, profile, keys) must finish within it. Default 10 seconds.
    timeout: Any = None
    # Ours: the limit for opening a connection (to the provider, or to the proxy);
    # default: the same as timeout.
    connectTimeout: Any = None

    @field_validator("sessionDuration", "timeout", "connectTimeout")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        if value is not None and parse_duration_seconds(value) <= 0:
            raise ValueError("must be positive")
        return value

    @property
    def timeout_seconds(self) -> float | None:
        return None if self.timeout is None else parse_duration_seconds(self.timeout)

    @property
    def connect_timeout_seconds(self) -> float | None:
        if self.connectTimeout is None:
            return None
        return parse_duration_seconds(self.connectTimeout)

    @property
    def session_duration_seconds(self) -> int | None:
        if self.sessionDuration is None:
            return None
        return int(parse_duration_seconds(self.sessionDuration))

    @property
    def additional_scopes(self) -> tuple[str, ...]:
        return tuple(split_scope(self.additionalScopes))


def refuse_scope_key(raw: dict[str, Any]) -> None:
    """oidc and oauth2 refuse a ``scope`` key (Backstage: use additionalScopes)."""
    if "scope" in raw or "scopes" in raw:
        raise ValueError(
            "The scope/scopes config option is not supported, use additionalScopes instead"
        )
