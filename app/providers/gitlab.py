"""``gitlab``: gitlab.com or a self-managed GitLab.

Deltas from the OAuth2 base: endpoints under ``audience`` (the GitLab base URL, default
``https://gitlab.com``); required scope ``read_user``; the profile is the REST API's
``/api/v4/user`` (passport-gitlab2). GitLab rotates refresh tokens, which the base handles.
(``plugins/auth-backend-module-gitlab-provider/src/authenticator.ts``)
"""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from app.config.validation import validate_model
from app.identity.types import ProfileInfo
from app.providers.base import OAuthSession
from app.providers.oauth2_base import OAuth2Authenticator, OAuth2Endpoints
from app.providers.passport import (
    ServiceSettings,
    build_service_provider,
    facts,
    optional_http_url,
    text,
    transform_profile,
)
from app.providers.registry_types import OAuthProviderBuild, ProviderDeps
from app.providers.resolvers_profile import GITLAB_RESOLVERS

# Its own sign-in resolvers (the registry adds Backstage's common ones).
RESOLVERS = GITLAB_RESOLVERS

DEFAULT_AUDIENCE = "https://gitlab.com"
AUTHORIZE_PATH = "/oauth/authorize"
TOKEN_PATH = "/oauth/token"
PROFILE_PATH = "/api/v4/user"
REQUIRED_SCOPES = ("read_user",)


def gitlab_endpoints(audience: str | None) -> OAuth2Endpoints:
    # Backstage appends the paths as they are; a trailing slash would double up.
    base = (audience or DEFAULT_AUDIENCE).removesuffix("/")
    return OAuth2Endpoints(base + AUTHORIZE_PATH, base + TOKEN_PATH, base + PROFILE_PATH)


class GitlabAuthenticator(OAuth2Authenticator):
    required_scopes: tuple[str, ...] = REQUIRED_SCOPES

    async def fetch_profile(self, session: OAuthSession) -> tuple[ProfileInfo, dict[str, Any]]:
        user = await self.fetch_profile_json(session.access_token)
        username = text(user.get("username"))
        profile = transform_profile(
            email=text(user.get("email")),
            display_name=text(user.get("name")) or username or text(user.get("id")),
            picture=text(user.get("avatar_url")),
            id_token=session.id_token,
        )
        return profile, facts(
            username=username,
            user_id=text(user.get("id")),
            profile_url=text(user.get("web_url")),
        )


class GitlabSettings(ServiceSettings):
    audience: str | None = None

    _url = field_validator("audience")(optional_http_url)


def create(raw: dict[str, Any], path: str, deps: ProviderDeps) -> OAuthProviderBuild:
    settings = validate_model(GitlabSettings, raw, path)
    return build_service_provider(
        GitlabAuthenticator.from_options, settings, gitlab_endpoints(settings.audience), deps
    )
