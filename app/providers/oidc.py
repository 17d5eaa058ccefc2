"""``oidc``: any OpenID Connect provider, configured by discovery.

Deltas from the OAuth2 base: endpoints come from ``metadataUrl``; the authorize request
carries ``nonce`` and ``prompt`` (default ``none``, ``auto`` omits it) and
``startUrlSearchParams``; the ID token is verified (signature by the IdP's JWKS, ``iss``,
``aud``, ``azp``, ``exp``, ``iat``, ``nonce``); the profile comes from userinfo; refresh
does not send the scope (openid-client); logout revokes the refresh token (RFC 7009) and,
with ``federatedLogout: true`` (auth0's name for it), also answers RP-initiated logout
at the provider's ``end_session_endpoint``.
(``plugins/auth-backend-module-oidc-provider/src/authenticator.ts``)

One piece (over 300 lines): discovery, ID-token verification and RP logout all read
the same discovered metadata, and pinniped extends them together.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
from authlib.common.urls import add_params_to_uri
from pydantic import Field, field_validator, model_validator

from app.config.validation import validate_model
from app.core.clock import Clock
from app.core.errors import AuthenticationError, BackstageError, ServiceUnavailableError
from app.core.timeouts import OUTBOUND_TIMEOUT_SECONDS
from app.identity.types import ProfileInfo
from app.oauth.origins import absolute_http_url
from app.providers.base import (
    AuthenticateInput,
    LogoutInput,
    LogoutResult,
    OAuthSession,
    StartInput,
)
from app.providers.jwt_verify import validate_claims, verify_jwt
from app.providers.oauth2_base import (
    ClientCredentials,
    OAuth2Authenticator,
    OAuth2Endpoints,
    UpstreamError,
    email_verified_fact,
    profile_from_claims,
)
from app.providers.registry_types import OAuthProviderBuild, ProviderDeps
from app.providers.remote_keys import KEY_REFETCH_INTERVAL_SECONDS, OutboundHttp, RemoteJwks
from app.providers.settings import OAuthEnvSettings, refuse_scope_key

log = logging.getLogger(__name__)

# Asymmetric algorithms only: "none" and HMAC (keyed with the client secret) are refused.
ALLOWED_ID_TOKEN_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
# A kid we have not seen triggers a JWKS reload, at most this often (IdP key rotation).
JWKS_RELOAD_INTERVAL_SECONDS = KEY_REFETCH_INTERVAL_SECONDS
_ID_TOKEN = "ID token"


@dataclass(frozen=True)
class OidcMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str
    revocation_endpoint: str | None
    end_session_endpoint: str | None
    id_token_algorithms: tuple[str, ...]


class OidcAuthenticator(OAuth2Authenticator):
    persist_scopes = True
    required_scopes: tuple[str, ...] = ("openid", "profile", "email")
    send_scope_on_refresh = False

    def __init__(
        self,
        *,
        credentials: ClientCredentials,
        metadata_url: str,
        clock: Clock,
        additional_scopes: tuple[str, ...] = (),
        prompt: str = "none",
        start_url_search_params: Mapping[str, str] | None = None,
        id_token_algorithm: str | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        timeout_seconds: float = OUTBOUND_TIMEOUT_SECONDS,
        connect_timeout_seconds: float | None = None,
        federated_logout: bool = False,
    ) -> None:
        super().__init__(
            credentials=credentials,
            endpoints=OAuth2Endpoints(authorization_url="", token_url=""),
            additional_scopes=additional_scopes,
            transport=transport,
            timeout_seconds=timeout_seconds,
            connect_timeout_seconds=connect_timeout_seconds,
        )
        self.metadata_url = metadata_url
        self.prompt = prompt
        self.start_url_search_params = dict(start_url_search_params or {})
        self.id_token_algorithm = id_token_algorithm
        self.federated_logout = federated_logout
        self._clock = clock
        self._metadata: OidcMetadata | None = None
        self._metadata_lock = asyncio.Lock()
        self._jwks: RemoteJwks | None = None
        self._jwks_http = OutboundHttp(transport)

    # -- discovery -------------------------------------------------------------------

    async def metadata(self) -> OidcMetadata:
        """Discovery, fetched once and cached; a failure is retried on the next call."""
        if self._metadata is not None:
            return self._metadata
        async with self._metadata_lock:
            if self._metadata is None:
                self._metadata = await self._discover()
        return self._metadata

    async def _discover(self) -> OidcMetadata:
        doc = await self.discovery_document()
        failure = f"Failed to discover OpenID provider metadata from {self.metadata_url}"
        if not isinstance(doc.get("userinfo_endpoint"), str):
            # Backstage requires it too: the profile comes from userinfo.
            raise UpstreamError(f"{failure}, the provider has no userinfo_endpoint")
        supported = doc.get("id_token_signing_alg_values_supported") or ["RS256"]
        if self.id_token_algorithm:
            algorithms: tuple[str, ...] = (self.id_token_algorithm,)
        else:
            algorithms = tuple(
                a for a in supported if isinstance(a, str) and a in ALLOWED_ID_TOKEN_ALGORITHMS
            )
        return OidcMetadata(
            issuer=doc["issuer"],
            authorization_endpoint=doc["authorization_endpoint"],
            token_endpoint=doc["token_endpoint"],
            userinfo_endpoint=doc["userinfo_endpoint"],
            jwks_uri=doc["jwks_uri"],
            revocation_endpoint=_opt(doc.get("revocation_endpoint")),
            end_session_endpoint=_opt(doc.get("end_session_endpoint")),
            id_token_algorithms=algorithms,
        )

    async def discovery_document(self) -> dict[str, Any]:
        """The discovery document, with the endpoints every flow needs checked present.

        Raises:
            UpstreamError: the provider is unreachable or answers something unusable.
        """
        failure = f"Failed to discover OpenID provider metadata from {self.metadata_url}"
        try:
            response = await self.client.request("GET", self.metadata_url, withhold_token=True)
        except httpx2.TimeoutException as exc:
            raise UpstreamError(f"{failure}, timed out") from exc
        except httpx2.HTTPError as exc:
            # The reason too (an untrusted certificate names its host and the trusted
            # bundle; a proxy failure says so), as Backstage's fetch error does.
            reason = f" ({exc})" if str(exc) else ""
            raise UpstreamError(f"{failure}, {exc.__class__.__name__}{reason}") from exc
        if response.status_code != 200:
            raise UpstreamError(f"{failure}, status {response.status_code}")
        try:
            doc = response.json()
        except ValueError as exc:
            raise UpstreamError(f"{failure}, not JSON") from exc
        if not isinstance(doc, dict):
            raise UpstreamError(f"{failure}, not a JSON object")
        missing = [
            k
            for k in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
            if not isinstance(doc.get(k), str)
        ]
        if missing:
            raise UpstreamError(f"{failure}, missing {', '.join(missing)}")
        return doc

    async def authorization_endpoint(self) -> str:
        return (await self.metadata()).authorization_endpoint

    async def token_endpoint(self) -> str:
        return (await self.metadata()).token_endpoint

    # -- flow deltas -----------------------------------------------------------------

    def authorize_params(self, request: StartInput) -> dict[str, str]:
        params = {"nonce": request.secrets.oidc_nonce}
        if self.prompt != "auto":
            params["prompt"] = self.prompt
        # startUrlSearchParams cannot override the standard parameters.
        for key, value in self.start_url_search_params.items():
            if key not in {"client_id", "redirect_uri", "response_type", "scope", "state"}:
                params.setdefault(key, value)
        return params

    def rejected_message(self, error: str, description: str | None) -> str:
        # openid-client: server_error and invalid* fail, other OP errors are rejections.
        text = f"{error} ({description})" if description else error
        if error == "server_error" or error.startswith("invalid"):
            return f"Authentication failed, {text}"
        return f"Authentication rejected, {text}"

    async def verify_session(self, session: OAuthSession, request: AuthenticateInput) -> None:
        if not session.id_token:
            raise BackstageError("Authentication failed, the token response has no id_token")
        await self.verify_id_token(session.id_token, nonce=request.secrets.oidc_nonce)

    async def fetch_profile(self, session: OAuthSession) -> tuple[ProfileInfo, dict[str, Any]]:
        meta = await self.metadata()
        userinfo = await self.fetch_profile_json(session.access_token, meta.userinfo_endpoint)
        if not isinstance(userinfo, dict):
            raise UpstreamError("Failed to fetch user profile, userinfo is not a JSON object")
        # OIDC Core 5.3.2 (token substitution): userinfo must describe the ID token's user.
        id_claims = await self.verify_id_token(session.id_token) if session.id_token else {}
        if id_claims and userinfo.get("sub") != id_claims.get("sub"):
            raise BackstageError("Authentication failed, userinfo sub does not match the ID token")
        # Backstage's oidc provider takes the email only when it is verified.
        profile = profile_from_claims(userinfo)
        if userinfo.get("email_verified") is not True:
            profile = ProfileInfo(display_name=profile.display_name, picture=profile.picture)
        facts = {"claims": {**id_claims, **userinfo}}
        return profile, {**facts, **email_verified_fact(profile.email, userinfo)}

    async def logout(self, request: LogoutInput) -> LogoutResult:
        try:
            meta = await self.metadata()
        except UpstreamError as exc:
            # Logging out must not depend on the IdP being up: cookies are cleared anyway.
            log.warning("logout without revocation: %s", exc.message)
            return LogoutResult()
        if request.refresh_token and meta.revocation_endpoint:
            await self._revoke(meta.revocation_endpoint, request.refresh_token)
        if not self.federated_logout or meta.end_session_endpoint is None:
            # Backstage's sign-out: the user stays in the app, signed in elsewhere.
            return LogoutResult()
        # RP-initiated logout (opt-in): the IdP's own session ends too, for every
        # application of the user; the browser leaves the app.
        params = {"client_id": self.credentials.client_id}
        if request.id_token:
            params["id_token_hint"] = request.id_token
        if request.post_logout_redirect_uri:
            params["post_logout_redirect_uri"] = request.post_logout_redirect_uri
        return LogoutResult(logout_url=add_params_to_uri(meta.end_session_endpoint, params))

    async def _revoke(self, endpoint: str, refresh_token: str) -> None:
        try:
            response = await self.client.revoke_token(
                endpoint, token=refresh_token, token_type_hint="refresh_token"
            )
            if response.status_code >= 400:
                log.warning("token revocation answered %s", response.status_code)
        except httpx2.HTTPError as exc:
            # The session cookies are cleared regardless: a failed revocation must not
            # keep the user signed in here.
            log.warning("token revocation failed: %s", exc.__class__.__name__)

    # -- ID tokens -------------------------------------------------------------------

    def _keys(self, meta: OidcMetadata) -> RemoteJwks:
        if self._jwks is None or self._jwks.url != meta.jwks_uri:
            self._jwks = RemoteJwks(
                url=meta.jwks_uri,
                http=self._jwks_http,
                clock=self._clock,
                what="identity provider's keys",
                refetch_interval_seconds=JWKS_RELOAD_INTERVAL_SECONDS,
            )
        return self._jwks

    async def verify_id_token(self, id_token: str, *, nonce: str | None = None) -> dict[str, Any]:
        """Verify an ID token (the header policy and keys the proxy providers use too)
        and return its claims.

        Raises:
            BackstageError: "Authentication failed, ..." when any check fails.
            UpstreamError: when the IdP's keys cannot be fetched.
        """
        meta = await self.metadata()
        try:
            verified = await verify_jwt(
                id_token,
                what=_ID_TOKEN,
                algorithms=meta.id_token_algorithms,
                key_for=self._keys(meta).key_for,
                require_kid=False,
            )
            claims = verified.claims
            validate_claims(
                claims,
                what=_ID_TOKEN,
                now=self._clock.now(),
                issuer=meta.issuer,
                audiences=[self.credentials.client_id],
                required=("exp", "iat", "sub"),
            )
        except AuthenticationError as exc:
            raise BackstageError(f"Authentication failed, {_lower_first(exc.message)}") from exc
        except ServiceUnavailableError as exc:
            raise UpstreamError(
                f"Failed to fetch the identity provider's keys, {exc.message}"
            ) from exc
        if nonce is not None and claims.get("nonce") != nonce:
            raise BackstageError("Authentication failed, the ID token's nonce does not match")
        aud, azp = claims.get("aud"), claims.get("azp")
        if isinstance(aud, list) and len(aud) > 1 and azp is None:
            raise BackstageError(
                "Authentication failed, ID token with several audiences has no azp"
            )
        if azp is not None and azp != self.credentials.client_id:
            raise BackstageError("Authentication failed, ID token azp does not match the client")
        return claims

    async def aclose(self) -> None:
        await super().aclose()
        await self._jwks_http.aclose()


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _opt(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class OidcSettings(OAuthEnvSettings):
    metadataUrl: str
    tokenEndpointAuthMethod: str = "client_secret_basic"
    tokenSignedResponseAlg: str | None = None
    prompt: str = "none"
    startUrlSearchParams: dict[str, str] = Field(default_factory=dict)
    # Ours, with auth0's name: sign-out also ends the user's session at the provider.
    federatedLogout: bool = False

    _url = field_validator("metadataUrl")(absolute_http_url)

    @field_validator("tokenEndpointAuthMethod")
    @classmethod
    def _auth_method(cls, value: str) -> str:
        if value not in {"client_secret_basic", "client_secret_post"}:
            raise ValueError("must be client_secret_basic or client_secret_post")
        return value

    @field_validator("tokenSignedResponseAlg")
    @classmethod
    def _alg(cls, value: str | None) -> str | None:
        if value is not None and value not in ALLOWED_ID_TOKEN_ALGORITHMS:
            raise ValueError(f"must be one of {', '.join(sorted(ALLOWED_ID_TOKEN_ALGORITHMS))}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_scope(cls, data: Any) -> Any:
        if isinstance(data, dict):
            refuse_scope_key(data)
        return data


def describe_sign_out(env: Mapping[str, Any]) -> str:
    """check-config's words for an environment's ``federatedLogout``."""
    if env.get("federatedLogout") is not True:
        return "federatedLogout: false (revokes, ends the session here; the user stays in the app)"
    back = env.get("postLogoutRedirectUri")
    then = f"then back to {back}" if back else "the user stays there: set postLogoutRedirectUri"
    return (
        "federatedLogout: true (the browser goes to the provider's end_session_endpoint, "
        f"which ends the user's session for every application; {then})"
    )


def create(raw: dict[str, Any], path: str, deps: ProviderDeps) -> OAuthProviderBuild:
    settings = validate_model(OidcSettings, raw, path)
    authenticator = OidcAuthenticator(
        credentials=ClientCredentials(
            settings.clientId, settings.clientSecret, settings.tokenEndpointAuthMethod
        ),
        metadata_url=settings.metadataUrl,
        clock=deps.clock,
        additional_scopes=settings.additional_scopes,
        prompt=settings.prompt,
        start_url_search_params=settings.startUrlSearchParams,
        id_token_algorithm=settings.tokenSignedResponseAlg,
        transport=deps.transport,
        timeout_seconds=settings.timeout_seconds or OUTBOUND_TIMEOUT_SECONDS,
        connect_timeout_seconds=settings.connect_timeout_seconds,
        federated_logout=settings.federatedLogout,
    )
    return OAuthProviderBuild(authenticator=authenticator, settings=settings)
