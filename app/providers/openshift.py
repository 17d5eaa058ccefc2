"""``openshift``: the OAuth server of an OpenShift cluster.

Deltas from the OAuth2 base: endpoints from config; required scope ``user:full``; the
profile is the API server's ``/apis/user.openshift.io/v1/users/~`` and its display name is
the user *name* (``metadata.name``), which ``displayNameMatchingUserEntityName`` relies on.
OpenShift issues no refresh token, so the access token doubles as one: the refresh cookie
holds it, a refresh is a profile fetch with it (a 401 becomes "Invalid access token"), and
logout deletes its ``OAuthAccessToken`` object (backstage/backstage#25383). The common
sign-in resolvers are not offered.
(``plugins/auth-backend-module-openshift-provider/src/authenticator.ts``, ``resolvers.ts``,
``module.ts``)
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
from collections.abc import Mapping
from typing import Any

import httpx2
from pydantic import field_validator

from app.config.validation import validate_model
from app.core.errors import AuthenticationError
from app.identity.types import ProfileInfo
from app.oauth.origins import absolute_http_url
from app.providers.base import AuthResult, LogoutInput, LogoutResult, OAuthSession, RefreshInput
from app.providers.oauth2_base import (
    ClientCredentials,
    OAuth2Authenticator,
    OAuth2Endpoints,
    UpstreamError,
    json_object,
)
from app.providers.passport import PASSPORT_CLIENT_AUTH, facts, text
from app.providers.registry_types import OAuthProviderBuild, ProviderDeps
from app.providers.resolvers_profile import matching_entity_name
from app.providers.settings import OAuthEnvSettings

log = logging.getLogger(__name__)

REQUIRED_SCOPES = ("user:full",)
USER_PATH = "/apis/user.openshift.io/v1/users/~"
ACCESS_TOKEN_PATH = "/apis/oauth.openshift.io/v1/oauthaccesstokens/{name}"
TOKEN_PREFIX = "sha256~"

RESOLVERS = {
    "displayNameMatchingUserEntityName": matching_entity_name(
        lambda info: info.profile.display_name,
        missing="OpenShift user profile does not contain a displayName",
    ),
}


def access_token_object_name(access_token: str) -> str:
    """The name of an access token's ``OAuthAccessToken`` object: ``sha256~`` plus the
    unpadded base64url SHA-256 of the token without its ``sha256~`` prefix (OpenShift's
    ``oauthaccesstokens`` API reference; Backstage computes it the same way)."""
    digest = hashlib.sha256(access_token.removeprefix(TOKEN_PREFIX).encode()).digest()
    return TOKEN_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class OpenShiftAuthenticator(OAuth2Authenticator):
    required_scopes: tuple[str, ...] = REQUIRED_SCOPES

    def __init__(
        self,
        *,
        credentials: ClientCredentials,
        endpoints: OAuth2Endpoints,
        api_server_url: str,
        additional_scopes: tuple[str, ...] = (),
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            credentials=credentials,
            endpoints=endpoints,
            additional_scopes=additional_scopes,
            transport=transport,
        )
        self.api_server_url = api_server_url

    def session_from_token(self, token: Mapping[str, Any], *, fallback_scope: str) -> OAuthSession:
        # No refresh token from OpenShift: the access token is kept in the refresh cookie.
        session = super().session_from_token(token, fallback_scope=fallback_scope)
        return dataclasses.replace(session, refresh_token=session.access_token)

    async def refresh(self, request: RefreshInput) -> AuthResult:
        # The "refresh token" is the access token: refreshing checks that it still works.
        session = OAuthSession(
            access_token=request.refresh_token,
            token_type="bearer",
            scope=request.scope,
            refresh_token=request.refresh_token,
        )
        profile, sign_in_facts = await self.load_profile(session)
        return AuthResult(session=session, profile=profile, sign_in_facts=sign_in_facts)

    async def fetch_profile(self, session: OAuthSession) -> tuple[ProfileInfo, dict[str, Any]]:
        response = await self._api("GET", USER_PATH, session.access_token)
        if response.status_code == 401:
            raise AuthenticationError("Invalid access token")
        if response.status_code != 200:
            raise UpstreamError(
                f"Failed to fetch user profile, HTTP error! Status: {response.status_code}"
            )
        metadata = json_object(response.json()).get("metadata")
        name = text(metadata.get("name")) if isinstance(metadata, dict) else None
        if name is None:
            raise UpstreamError("Failed to fetch user profile, the user has no metadata.name")
        return ProfileInfo(display_name=name), facts(username=name)

    async def logout(self, request: LogoutInput) -> LogoutResult:
        # Deleting the token's OAuthAccessToken revokes it (what `oc logout` does).
        token = request.refresh_token
        if not token:
            return LogoutResult()  # nothing to revoke (Backstage fails here; cookies must go)
        path = ACCESS_TOKEN_PATH.format(name=access_token_object_name(token))
        try:
            response = await self._api("DELETE", path, token)
        except httpx2.HTTPError as exc:
            # The cookies are cleared regardless: a failed deletion must not keep the session.
            log.warning("OAuthAccessToken deletion failed: %s", exc.__class__.__name__)
            return LogoutResult()
        # 401/404: the token is already invalid or gone, which is what logout wants.
        if response.status_code >= 400 and response.status_code not in (401, 404):
            log.warning("OAuthAccessToken deletion answered %s", response.status_code)
        return LogoutResult()

    async def _api(self, method: str, path: str, access_token: str) -> httpx2.Response:
        response: httpx2.Response = await self.client.request(
            method,
            self.api_server_url + path,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            withhold_token=True,
        )
        return response


class OpenShiftSettings(OAuthEnvSettings):
    authorizationUrl: str
    tokenUrl: str
    openshiftApiServerUrl: str

    _urls = field_validator("authorizationUrl", "tokenUrl")(absolute_http_url)

    @field_validator("openshiftApiServerUrl")
    @classmethod
    def _api(cls, value: str) -> str:
        # Paths are appended as they are: a trailing slash would double up.
        return absolute_http_url(value).rstrip("/")


def create(raw: dict[str, Any], path: str, deps: ProviderDeps) -> OAuthProviderBuild:
    settings = validate_model(OpenShiftSettings, raw, path)
    authenticator = OpenShiftAuthenticator(
        credentials=ClientCredentials(
            settings.clientId, settings.clientSecret, PASSPORT_CLIENT_AUTH
        ),
        endpoints=OAuth2Endpoints(settings.authorizationUrl, settings.tokenUrl),
        additional_scopes=settings.additional_scopes,
        transport=deps.transport,
        api_server_url=settings.openshiftApiServerUrl,
    )
    return OAuthProviderBuild(
        authenticator=authenticator,
        settings=settings,
        # Backstage's openshift module signs in by display name unless config says otherwise.
        default_resolver=RESOLVERS["displayNameMatchingUserEntityName"]({}),
    )
