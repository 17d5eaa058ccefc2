"""``pinniped``: a Pinniped Supervisor FederationDomain, for Kubernetes sign-in.

Deltas from the OIDC provider: discovery from ``<federationDomain>/.well-known/
openid-configuration``, kept an hour (a failed discovery is retried on the next call);
scopes ``openid pinniped:request-audience username offline_access``; ID tokens ES256 only,
with no nonce (openid-client sends none for ``response_type=code``; PKCE S256 binds the
code); ``/start?audience=`` (the target cluster) rides in the state, and the callback then
trades the access token for a cluster-scoped ID token (RFC 8693 token exchange at the
supervisor's token endpoint), returned as ``providerInfo.idToken``. Refresh has no state,
so it returns the supervisor's own ID token, as Backstage does. The profile is empty; no
userinfo, no revocation, no RP-initiated logout.
(``plugins/auth-backend-module-pinniped-provider/src/authenticator.ts``)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx2
from authlib.integrations.base_client.errors import OAuthError
from pydantic import field_validator, model_validator

from app.config.validation import validate_model
from app.core.clock import Clock
from app.core.errors import BackstageError
from app.identity.types import ProfileInfo
from app.oauth.origins import absolute_http_url
from app.oauth.state import decode_state, decode_state_fields, encode_state
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
from app.providers.oauth2_base import ClientCredentials, UpstreamError, upstream_failures
from app.providers.oidc import OidcAuthenticator, OidcMetadata
from app.providers.registry_types import OAuthProviderBuild, ProviderDeps
from app.providers.settings import OAuthEnvSettings

# /start query parameters the provider reads (the target cluster).
START_PARAMS = ("audience",)
METADATA_TTL_SECONDS = 3600.0
ID_TOKEN_ALGORITHM = "ES256"
TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt"
SCOPE_KEY_REFUSED = (
    'The pinniped provider no longer supports the "scope" configuration option. '
    'Please use the "additionalScopes" option instead.'
)


class PinnipedAuthenticator(OidcAuthenticator):
    persist_scopes = False
    required_scopes: tuple[str, ...] = (
        "openid",
        "pinniped:request-audience",
        "username",
        "offline_access",
    )

    def __init__(
        self,
        *,
        credentials: ClientCredentials,
        federation_domain: str,
        clock: Clock,
        additional_scopes: tuple[str, ...] = (),
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            credentials=credentials,
            metadata_url=f"{federation_domain}/.well-known/openid-configuration",
            clock=clock,
            additional_scopes=additional_scopes,
            id_token_algorithm=ID_TOKEN_ALGORITHM,
            transport=transport,
        )
        self._metadata_expires_at = 0.0

    # -- discovery -------------------------------------------------------------------

    async def metadata(self) -> OidcMetadata:
        """Discovery, kept an hour; nothing is kept from a failure, so the next call
        retries (Backstage's PinnipedStrategyCache)."""
        cached = self._metadata
        if cached is not None and self._clock.now() < self._metadata_expires_at:
            return cached
        async with self._metadata_lock:
            cached = self._metadata
            if cached is None or self._clock.now() >= self._metadata_expires_at:
                self._metadata = None
                cached = await self._discover()
                self._metadata = cached
                self._metadata_expires_at = self._clock.now() + METADATA_TTL_SECONDS
        return cached

    async def _discover(self) -> OidcMetadata:
        # The supervisor has no userinfo, revocation or end-session endpoint to use.
        doc = await self.discovery_document()
        return OidcMetadata(
            issuer=doc["issuer"],
            authorization_endpoint=doc["authorization_endpoint"],
            token_endpoint=doc["token_endpoint"],
            userinfo_endpoint="",
            jwks_uri=doc["jwks_uri"],
            revocation_endpoint=None,
            end_session_endpoint=None,
            id_token_algorithms=(ID_TOKEN_ALGORITHM,),
        )

    # -- flow deltas -----------------------------------------------------------------

    async def start(self, request: StartInput) -> StartResult:
        audience = request.extra_params.get("audience")
        if audience is None:
            return await super().start(request)
        state = dataclasses.replace(decode_state(request.state), audience=audience)
        return await super().start(dataclasses.replace(request, state=encode_state(state)))

    def authorize_params(self, request: StartInput) -> dict[str, str]:
        # openid-client's strategy adds no nonce and no prompt to a code flow.
        return {}

    async def verify_session(self, session: OAuthSession, request: AuthenticateInput) -> None:
        if not session.id_token:
            raise BackstageError("Authentication failed, the token response has no id_token")
        await self.verify_id_token(session.id_token)

    async def authenticate(self, request: AuthenticateInput) -> AuthResult:
        result = await super().authenticate(request)
        audience = decode_state_fields(request.params.get("state", "")).get("audience")
        if not audience:
            return result
        id_token = await self.cluster_id_token(result.session.access_token, audience)
        return dataclasses.replace(
            result, session=dataclasses.replace(result.session, id_token=id_token)
        )

    async def refresh(self, request: RefreshInput) -> AuthResult:
        result = await super().refresh(request)
        if result.session.id_token:
            # openid-client validates a refreshed ID token too (no nonce to compare).
            await self.verify_id_token(result.session.id_token)
        return result

    async def fetch_profile(self, session: OAuthSession) -> tuple[ProfileInfo, dict[str, Any]]:
        # Backstage's default profile transform for pinniped: an empty profile.
        return ProfileInfo(), {}

    async def logout(self, request: LogoutInput) -> LogoutResult:
        return LogoutResult()

    # -- RFC 8693 --------------------------------------------------------------------

    async def cluster_id_token(self, access_token: str, audience: str) -> str:
        """The supervisor's token exchange: this session's access token for an ID token
        whose audience is the cluster.

        Raises:
            BackstageError: the supervisor refused the exchange (Backstage's message).
            UpstreamError: the supervisor failed, timed out or answered garbage.
        """
        # Backstage nests two stringified Errors; the frontend shows this message as is.
        failure = (
            f'Failed to get cluster specific ID token for "{audience}": '
            "Error: RFC8693 token exchange failed with error: "
        )
        try:
            with upstream_failures(failure, self.timeout_seconds, who="the supervisor"):
                token = await self.client.fetch_token(
                    await self.token_endpoint(),
                    grant_type=TOKEN_EXCHANGE_GRANT,
                    subject_token=access_token,
                    audience=audience,
                    subject_token_type=ACCESS_TOKEN_TYPE,
                    requested_token_type=JWT_TOKEN_TYPE,
                )
        except OAuthError as exc:
            detail = exc.error + (f" ({exc.description})" if exc.description else "")
            raise BackstageError(f"{failure}OPError: {detail}") from exc
        issued = token.get("access_token") if isinstance(token, dict) else None
        if not isinstance(issued, str) or not issued:
            raise UpstreamError(f"{failure}the response has no access_token")
        return issued


class PinnipedSettings(OAuthEnvSettings):
    federationDomain: str

    _url = field_validator("federationDomain")(absolute_http_url)

    @model_validator(mode="before")
    @classmethod
    def _no_scope(cls, data: Any) -> Any:
        if isinstance(data, dict) and "scope" in data:
            raise ValueError(SCOPE_KEY_REFUSED)
        return data


def create(raw: dict[str, Any], path: str, deps: ProviderDeps) -> OAuthProviderBuild:
    settings = validate_model(PinnipedSettings, raw, path)
    authenticator = PinnipedAuthenticator(
        credentials=ClientCredentials(settings.clientId, settings.clientSecret),
        # Backstage appends the discovery path to the configured value as it is.
        federation_domain=settings.federationDomain,
        clock=deps.clock,
        additional_scopes=settings.additional_scopes,
        transport=deps.transport,
    )
    return OAuthProviderBuild(authenticator=authenticator, settings=settings)
