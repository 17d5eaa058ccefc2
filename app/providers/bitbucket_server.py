"""``bitbucketServer``: Bitbucket Server / Data Center, addressed by its ``host``.

Deltas from the OAuth2 base: endpoints under ``https://<host>/rest/oauth2/latest/``; the
strategy has no profile, so after sign-in and every refresh the user is looked up by hand:
``/plugins/servlet/applinks/whoami`` names the user in its ``X-Ausername`` header (it answers
200 either way), then ``/rest/api/latest/users/<name>?avatarSize=256`` gives the profile.
Sign-in resolvers: Backstage's module spreads the common resolvers *after* its own
``emailMatchingUserEntityProfileEmail``, so the common one of that name is what runs.
(``plugins/auth-backend-module-bitbucket-server-provider/src/authenticator.ts``,
``helpers.ts``, ``module.ts``)
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urljoin

import httpx2
from pydantic import field_validator

from app.config.validation import validate_model
from app.core.errors import BackstageError
from app.identity.types import ProfileInfo
from app.providers.base import OAuthSession
from app.providers.oauth2_base import (
    ClientCredentials,
    OAuth2Authenticator,
    OAuth2Endpoints,
    UpstreamError,
    json_object,
)
from app.providers.passport import PASSPORT_CLIENT_AUTH, facts, text
from app.providers.registry_types import OAuthProviderBuild, ProviderDeps
from app.providers.settings import OAuthEnvSettings

AUTHORIZE_PATH = "/rest/oauth2/latest/authorize"
TOKEN_PATH = "/rest/oauth2/latest/token"
WHOAMI_PATH = "/plugins/servlet/applinks/whoami"
USER_PATH = "/rest/api/latest/users/{name}?avatarSize=256"
NO_USERNAME = "Failed to retrieve the username of the logged in user"


class BitbucketServerAuthenticator(OAuth2Authenticator):
    def __init__(
        self,
        *,
        credentials: ClientCredentials,
        host: str,
        additional_scopes: tuple[str, ...] = (),
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = f"https://{host}"
        super().__init__(
            credentials=credentials,
            endpoints=OAuth2Endpoints(self.base_url + AUTHORIZE_PATH, self.base_url + TOKEN_PATH),
            additional_scopes=additional_scopes,
            transport=transport,
        )

    async def fetch_profile(self, session: OAuthSession) -> tuple[ProfileInfo, dict[str, Any]]:
        whoami = await self._get(WHOAMI_PATH, session.access_token)
        if whoami.status_code >= 500:
            raise UpstreamError(f"{NO_USERNAME}, whoami answered {whoami.status_code}")
        # Anonymous or not, whoami answers 200: only the header says who the token is for.
        username = whoami.headers.get("X-Ausername")
        if not username:
            raise BackstageError(NO_USERNAME)
        response = await self._get(
            USER_PATH.format(name=quote(username, safe="")), session.access_token
        )
        if response.status_code != 200:
            error = UpstreamError if response.status_code >= 500 else BackstageError
            raise error(f"Failed to retrieve the user '{username}', status {response.status_code}")
        user = json_object(response.json())
        user_id, name, avatar = (
            text(user.get("id")),
            text(user.get("name")),
            text(user.get("avatarUrl")),
        )
        profile = ProfileInfo(
            email=text(user.get("emailAddress")),
            display_name=text(user.get("displayName")) or name or user_id,
            # A server-relative path, unless the avatar is served elsewhere (Gravatar).
            picture=urljoin(self.base_url + "/", avatar) if avatar else None,
        )
        return profile, facts(user_id=user_id, username=name)

    async def _get(self, path: str, access_token: str) -> httpx2.Response:
        response: httpx2.Response = await self.client.request(
            "GET",
            self.base_url + path,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            withhold_token=True,
        )
        return response


_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[^\s?#]*)?$")


class BitbucketServerSettings(OAuthEnvSettings):
    # The host name, optionally with a port and a context path ("example.com/bitbucket").
    host: str

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not _HOST.match(value):
            raise ValueError("must be a host name such as 'bitbucket.example.com', not a URL")
        return value.rstrip("/")


def create(raw: dict[str, Any], path: str, deps: ProviderDeps) -> OAuthProviderBuild:
    settings = validate_model(BitbucketServerSettings, raw, path)
    authenticator = BitbucketServerAuthenticator(
        credentials=ClientCredentials(
            settings.clientId, settings.clientSecret, PASSPORT_CLIENT_AUTH
        ),
        host=settings.host,
        additional_scopes=settings.additional_scopes,
        transport=deps.transport,
    )
    return OAuthProviderBuild(authenticator=authenticator, settings=settings)
