"""The shared authorization-code flow, over Authlib's async httpx2 client.

Providers subclass ``OAuth2Authenticator`` and override only what differs: endpoints,
scopes, extra authorize parameters, the profile fetch. Upstream failures are wrapped
here, at the provider boundary, into messages the popup or the refresh caller can show.

One piece (over 300 lines): the authorization-code flow that every OAuth provider
extends by overriding its steps; its hooks are only readable next to the flow that calls
them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Self, TypedDict

import httpx2
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jws
from joserfc.errors import JoseError

from app.core.errors import AuthenticationError, BackstageError, ServiceUnavailableError
from app.core.timeouts import OUTBOUND_TIMEOUT_SECONDS
from app.identity.types import EMAIL_VERIFIED, ProfileInfo
from app.oauth.scopes import merge_scopes
from app.providers.base import (
    AuthenticateInput,
    AuthResult,
    LogoutInput,
    LogoutResult,
    OAuthSession,
    RefreshInput,
    StartInput,
    StartResult,
)


class UpstreamError(ServiceUnavailableError):
    """Raised when the identity provider fails, times out or answers garbage."""


@contextlib.contextmanager
def upstream_failures(
    failure: str, timeout_seconds: float, *, who: str = "the identity provider"
) -> Iterator[None]:
    """Transport failures of a call to ``who`` as ``UpstreamError`` (503), each message
    ``failure`` followed by what went wrong."""
    try:
        yield
    except httpx2.TimeoutException as exc:
        raise UpstreamError(
            f"{failure}{who} did not answer within {timeout_seconds:g} seconds"
        ) from exc
    except httpx2.HTTPStatusError as exc:
        raise UpstreamError(f"{failure}{who} answered {exc.response.status_code}") from exc
    except httpx2.HTTPError as exc:
        # The transport's words (a proxy refusing, a certificate not trusted) say why.
        reason = f" ({exc})" if str(exc) else ""
        raise UpstreamError(f"{failure}could not reach {who}{reason}") from exc
    except ValueError as exc:
        raise UpstreamError(f"{failure}{who} answered garbage") from exc


@dataclass(frozen=True)
class OAuth2ClientOptions:
    """What every OAuth provider's authenticator is built from (``passport``'s builder
    fills it from config); a provider's own options are its constructor's typed extras."""

    credentials: ClientCredentials
    endpoints: OAuth2Endpoints
    additional_scopes: tuple[str, ...] = ()
    transport: httpx2.AsyncBaseTransport | None = None
    extra_authorize_params: Mapping[str, str] | None = None

    def constructor_args(self) -> OAuth2ClientArgs:
        """These options as ``OAuth2Authenticator``'s keyword arguments (a subclass with
        options of its own passes them on with ``super().__init__(**...)``)."""
        return {
            "credentials": self.credentials,
            "endpoints": self.endpoints,
            "additional_scopes": self.additional_scopes,
            "transport": self.transport,
            "extra_authorize_params": self.extra_authorize_params,
        }


class OAuth2ClientArgs(TypedDict):
    credentials: ClientCredentials
    endpoints: OAuth2Endpoints
    additional_scopes: tuple[str, ...]
    transport: httpx2.AsyncBaseTransport | None
    extra_authorize_params: Mapping[str, str] | None


class _NoCookies(httpx2.Cookies):
    """A cookie jar that takes no cookie from a response and sends none: the client serves
    every user, so a cookie the identity provider sets for one must never ride along with
    the next user's calls. (Not even parsed: httpx's jar costs ~0.06 ms per call.)"""

    def extract_cookies(self, response: httpx2.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx2.Request) -> None:
        return None


class _SharedOAuthClient(AsyncOAuth2Client):  # type: ignore[misc]
    """Authlib's client, whose ``cookies`` (what httpx reads and extracts into) never keep
    a cookie (``_NoCookies``)."""

    def __init__(self, **kwargs: Any) -> None:
        self._no_cookies = _NoCookies()
        super().__init__(**kwargs)

    @property
    def cookies(self) -> httpx2.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        pass


@dataclass(frozen=True)
class OAuth2Endpoints:
    authorization_url: str
    token_url: str
    userinfo_url: str | None = None
    revocation_url: str | None = None


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str
    # client_secret_basic | client_secret_post
    token_endpoint_auth_method: str = "client_secret_basic"


def decode_unverified_claims(id_token: str | None) -> dict[str, Any]:
    """Claims of an ID token used only to fill profile gaps, as Backstage does; never
    for authorization decisions (OIDC verifies its ID tokens separately)."""
    if not id_token:
        return {}
    try:
        payload = json.loads(jws.extract_compact(id_token.encode()).payload)
    except (JoseError, ValueError, UnicodeDecodeError):
        return {}
    return payload if isinstance(payload, dict) else {}


def _timeouts(seconds: float, connect_seconds: float | None) -> httpx2.Timeout:
    return httpx2.Timeout(seconds, connect=min(connect_seconds or seconds, seconds))


class OAuth2Authenticator:
    persist_scopes = False
    required_scopes: tuple[str, ...] = ()
    # PKCE S256 is harmless for services that ignore it and stops code injection where
    # they honour it (RFC 9700 2.1.1).
    use_pkce = True
    # Passport strategies send the scope on refresh; openid-client does not.
    send_scope_on_refresh = True
    # Token-endpoint error codes that mean "sign in again" (401), not "the IdP is down".
    reauthentication_errors: frozenset[str] = frozenset({"invalid_grant"})

    def __init__(
        self,
        *,
        credentials: ClientCredentials,
        endpoints: OAuth2Endpoints,
        additional_scopes: tuple[str, ...] = (),
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout_seconds: float = OUTBOUND_TIMEOUT_SECONDS,
        connect_timeout_seconds: float | None = None,
        extra_authorize_params: Mapping[str, str] | None = None,
    ) -> None:
        self.credentials = credentials
        self.endpoints = endpoints
        self.additional_scopes = additional_scopes
        self.extra_authorize_params = dict(extra_authorize_params or {})
        self.timeout_seconds = timeout_seconds
        # One long-lived client per provider environment keeps the connection pool warm.
        # Its ``token`` attribute is shared state, so we only ever use return values.
        self.client = _SharedOAuthClient(
            client_id=credentials.client_id,
            client_secret=credentials.client_secret,
            token_endpoint_auth_method=credentials.token_endpoint_auth_method,
            revocation_endpoint_auth_method=credentials.token_endpoint_auth_method,
            code_challenge_method="S256" if self.use_pkce else None,
            timeout=_timeouts(timeout_seconds, connect_timeout_seconds),
            transport=transport,
            follow_redirects=False,
        )

    @classmethod
    def from_options(cls, options: OAuth2ClientOptions) -> Self:
        """The authenticator with the common options only (no provider extras)."""
        return cls(**options.constructor_args())

    def set_timeouts(self, timeout_seconds: float, connect_timeout_seconds: float | None) -> None:
        """The environment's ``timeout``/``connectTimeout`` (applied to every provider when
        its runtime is built, whatever its factory passed)."""
        self.timeout_seconds = timeout_seconds
        self.client.timeout = _timeouts(timeout_seconds, connect_timeout_seconds)

    async def aclose(self) -> None:
        await self.client.aclose()

    # -- hooks -----------------------------------------------------------------------

    def transform_scopes(
        self,
        requested: list[str],
        granted: list[str],
        required: tuple[str, ...],
        additional: tuple[str, ...],
    ) -> list[str]:
        return merge_scopes(requested, granted, required, additional)

    async def authorization_endpoint(self) -> str:
        return self.endpoints.authorization_url

    async def token_endpoint(self) -> str:
        return self.endpoints.token_url

    def authorize_params(self, request: StartInput) -> dict[str, str]:
        """Provider-specific authorize parameters (after the standard ones)."""
        return dict(self.extra_authorize_params)

    async def fetch_profile(self, session: OAuthSession) -> tuple[ProfileInfo, dict[str, Any]]:
        """Profile plus sign-in facts. The generic provider knows only the ID token."""
        claims = decode_unverified_claims(session.id_token)
        profile = profile_from_claims(claims)
        return profile, {"claims": claims, **email_verified_fact(profile.email, claims)}

    def rejected_message(self, error: str, description: str | None) -> str:
        # passport-oauth2: access_denied is a rejection, anything else a failure.
        if error == "access_denied":
            return f"Authentication rejected, {description or error}"
        return f"Authentication failed, {description or error}"

    # -- the flow --------------------------------------------------------------------

    async def start(self, request: StartInput) -> StartResult:
        params = {"redirect_uri": request.callback_url, **self.authorize_params(request)}
        if request.scope:
            params["scope"] = request.scope
        url, _ = self.client.create_authorization_url(
            await self.authorization_endpoint(),
            state=request.state,
            code_verifier=request.secrets.code_verifier if self.use_pkce else None,
            **params,
        )
        return StartResult(url=url)

    async def authenticate(self, request: AuthenticateInput) -> AuthResult:
        params = request.params
        if params.get("error"):
            raise BackstageError(
                self.rejected_message(params["error"], params.get("error_description"))
            )
        code = params.get("code")
        if not code:
            raise BackstageError("Authentication failed, missing authorization code")
        extra: dict[str, str] = {}
        if self.use_pkce:
            extra["code_verifier"] = request.secrets.code_verifier
        token = await self.token_request(
            "Authentication failed, Failed to obtain access token",
            self.client.fetch_token(
                await self.token_endpoint(),
                grant_type="authorization_code",
                code=code,
                redirect_uri=request.callback_url,
                **extra,
            ),
        )
        session = self.session_from_token(token, fallback_scope="")
        await self.verify_session(session, request)
        profile, facts = await self.load_profile(session)
        return AuthResult(session=session, profile=profile, sign_in_facts=facts)

    async def refresh(self, request: RefreshInput) -> AuthResult:
        extra: dict[str, str] = {}
        if self.send_scope_on_refresh and request.scope:
            extra["scope"] = request.scope
        token = await self.token_request(
            "Failed to refresh access token",
            self.client.refresh_token(
                await self.token_endpoint(), refresh_token=request.refresh_token, **extra
            ),
        )
        session = self.session_from_token(token, fallback_scope=request.scope)
        if session.refresh_token is None:
            # The IdP did not rotate: the old refresh token stays valid.
            session = dataclasses.replace(session, refresh_token=request.refresh_token)
        profile, facts = await self.load_profile(session)
        return AuthResult(session=session, profile=profile, sign_in_facts=facts)

    async def logout(self, request: LogoutInput) -> LogoutResult:
        return LogoutResult()

    async def verify_session(self, session: OAuthSession, request: AuthenticateInput) -> None:
        """Check the token response (OIDC validates its ID token here)."""

    # -- helpers ---------------------------------------------------------------------

    async def token_request(self, failure: str, call: Any) -> Mapping[str, Any]:
        try:
            with upstream_failures(f"{failure}, ", self.timeout_seconds):
                token = await call
        except OAuthError as exc:
            detail = exc.error + (f" ({exc.description})" if exc.description else "")
            if exc.error in self.reauthentication_errors:
                raise AuthenticationError(f"{failure}, {detail}") from exc
            raise UpstreamError(f"{failure}, {detail}") from exc
        if not isinstance(token, Mapping) or not isinstance(token.get("access_token"), str):
            raise UpstreamError(f"{failure}, the token response has no access_token")
        return token

    async def load_profile(self, session: OAuthSession) -> tuple[ProfileInfo, dict[str, Any]]:
        try:
            return await self.fetch_profile(session)
        except BackstageError:
            raise
        except httpx2.TimeoutException as exc:
            raise UpstreamError(
                f"Failed to fetch user profile, the identity provider did not answer within "
                f"{self.timeout_seconds:g} seconds"
            ) from exc
        except (httpx2.HTTPError, ValueError) as exc:
            raise UpstreamError(f"Failed to fetch user profile, {exc}") from exc

    def session_from_token(self, token: Mapping[str, Any], *, fallback_scope: str) -> OAuthSession:
        scope = token.get("scope")
        if isinstance(scope, list):
            scope = " ".join(str(s) for s in scope)
        expires_in = token.get("expires_in")
        return OAuthSession(
            access_token=str(token["access_token"]),
            token_type=str(token.get("token_type") or "bearer"),
            scope=" ".join(str(scope).split()) if scope else fallback_scope,
            id_token=_opt_str(token.get("id_token")),
            expires_in_seconds=_opt_int(expires_in),
            refresh_token=_opt_str(token.get("refresh_token")),
        )

    async def fetch_profile_json(
        self, access_token: str, url: str | None = None, *, unauthorized: str | None = None
    ) -> dict[str, Any]:
        """The JSON object at ``url`` (default: the provider's profile endpoint), read with
        the access token: how every provider fetches a profile.

        Raises:
            BackstageError: ``unauthorized``, when given and the endpoint answers 401.
            UpstreamError: any other failure, or a body that is not a JSON object.
        """
        url = url or self.endpoints.userinfo_url
        if url is None:
            raise UpstreamError("Failed to fetch user profile, no profile endpoint is configured")
        response = await self.client.request(
            "GET",
            url,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            withhold_token=True,
        )
        if response.status_code == 401 and unauthorized:
            raise BackstageError(unauthorized)
        if response.status_code != 200:
            raise UpstreamError(
                f"Failed to fetch user profile, {url} answered {response.status_code}"
            )
        return json_object(response.json())


def json_object(value: Any) -> dict[str, Any]:
    """A profile response body that must be a JSON object.

    Raises:
        UpstreamError: when it is not.
    """
    if not isinstance(value, dict):
        raise UpstreamError("Failed to fetch user profile, the profile is not a JSON object")
    return value


def profile_from_claims(claims: Mapping[str, Any]) -> ProfileInfo:
    email = claims.get("email")
    if claims.get("email_verified") is False:
        email = None
    return ProfileInfo(
        email=email if isinstance(email, str) else None,
        display_name=_opt_str(claims.get("name")),
        picture=_opt_str(claims.get("picture")),
    )


def email_verified_fact(email: str | None, *sources: Mapping[str, Any]) -> dict[str, bool]:
    """``{"email_verified": ...}`` as the first source that carries ``email`` says, for the
    sign-in facts; empty when no source says (e.g. Microsoft Graph's ``mail``)."""
    for source in sources:
        verified = source.get("email_verified")
        if email and source.get("email") == email and isinstance(verified, bool):
            return {EMAIL_VERIFIED: verified}
    return {}


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _opt_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
