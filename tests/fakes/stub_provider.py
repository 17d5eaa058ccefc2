"""A scriptable OAuth provider for handler and schema tests.

``StubProvider`` is what a test holds: its ``definition`` goes into
``Dependencies(providers=...)`` and, once the app is built, ``instances`` maps each
configured environment (``"development"``, ...) to the ``StubAuthenticator`` the app
uses, so a test can script refresh/logout behaviour and read the recorded calls.

The stub's identity provider lives at ``http://idp.invalid`` (a reserved TLD: nothing is
ever contacted, and a client that followed a redirect there would fail loudly).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

from app.config.validation import validate_model
from app.core.errors import AuthenticationError
from app.identity.resolvers import COMMON_RESOLVERS
from app.identity.types import ProfileInfo
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
from app.providers.oauth2_base import UpstreamError
from app.providers.registry_types import (
    OAuthProviderBuild,
    OAuthProviderDefinition,
    ProviderDefinition,
    ProviderDeps,
)
from app.providers.settings import OAuthEnvSettings

IDP_AUTHORIZE_URL = "http://idp.invalid/authorize"
VALID_CODE = "valid-code"

ACCESS_TOKEN = "AT1"
ID_TOKEN = "ID1"
REFRESH_TOKEN = "RT1"
TOKEN_SCOPE = "openid email"
EXPIRES_IN = 3600
PROFILE = ProfileInfo(
    email="jane.doe@example.com",
    display_name="Jane Doe",
    picture="http://idp.invalid/jane.png",
)

RefreshMode = Literal["keep", "rotate", "none", "auth_error", "upstream_error", "crash"]


@dataclass
class StubAuthenticator:
    """Implements ``app.providers.base.OAuthAuthenticator``."""

    settings: OAuthEnvSettings
    persist_scopes: bool = False
    required_scopes: tuple[str, ...] = ()
    additional_scopes: tuple[str, ...] = ()
    # Scripting.
    refresh_mode: RefreshMode = "keep"
    refresh_token_out: str = REFRESH_TOKEN  # what authenticate() hands out
    logout_url: str | None = None
    start_error: Exception | None = None
    # Recording.
    starts: list[StartInput] = field(default_factory=list)
    authentications: list[AuthenticateInput] = field(default_factory=list)
    refreshes: list[RefreshInput] = field(default_factory=list)
    logouts: list[LogoutInput] = field(default_factory=list)
    closed: bool = False
    _rotations: int = 0

    def transform_scopes(
        self,
        requested: list[str],
        granted: list[str],
        required: tuple[str, ...],
        additional: tuple[str, ...],
    ) -> list[str]:
        # Backstage's default transform: the ordered union.
        return merge_scopes(requested, granted, required, additional)

    def reset(self) -> None:
        """Back to the defaults: scripting and recordings (for a shared app)."""
        StubAuthenticator.__init__(
            self,
            settings=self.settings,
            persist_scopes=self.persist_scopes,
            required_scopes=self.required_scopes,
            additional_scopes=self.additional_scopes,
        )

    async def start(self, request: StartInput) -> StartResult:
        self.starts.append(request)
        if self.start_error is not None:
            raise self.start_error
        query = {
            "response_type": "code",
            "client_id": self.settings.clientId,
            "redirect_uri": request.callback_url,
            "scope": request.scope,
            "state": request.state,
            **request.extra_params,
        }
        return StartResult(url=f"{IDP_AUTHORIZE_URL}?{urlencode(query)}")

    async def authenticate(self, request: AuthenticateInput) -> AuthResult:
        self.authentications.append(request)
        params = request.params
        if "error" in params:
            description = params.get("error_description", params["error"])
            if params["error"] == "access_denied":
                # passport-oauth2: a plain Error, name "Error".
                raise Exception(f"Authentication rejected, {description}")
            raise Exception(f"Authentication failed, {description}")
        if params.get("code") != VALID_CODE:
            raise Exception("Authentication failed, Failed to obtain access token")
        return self._result(refresh_token=self.refresh_token_out)

    async def refresh(self, request: RefreshInput) -> AuthResult:
        self.refreshes.append(request)
        mode = self.refresh_mode
        if mode == "auth_error":
            raise AuthenticationError("Refresh token is invalid")
        if mode == "upstream_error":
            raise UpstreamError("Failed to refresh access token, the identity provider is down")
        if mode == "crash":
            raise RuntimeError("stub exploded")
        if mode == "rotate":
            self._rotations += 1
            new_token: str | None = f"{request.refresh_token}-rotated-{self._rotations}"
        elif mode == "none":
            new_token = None
        else:
            new_token = request.refresh_token
        return self._result(refresh_token=new_token, access_token="AT2")

    async def logout(self, request: LogoutInput) -> LogoutResult:
        self.logouts.append(request)
        return LogoutResult(logout_url=self.logout_url)

    async def aclose(self) -> None:
        self.closed = True

    def _result(self, *, refresh_token: str | None, access_token: str = ACCESS_TOKEN) -> AuthResult:
        return AuthResult(
            session=OAuthSession(
                access_token=access_token,
                token_type="Bearer",
                scope=TOKEN_SCOPE,
                id_token=ID_TOKEN,
                expires_in_seconds=EXPIRES_IN,
                refresh_token=refresh_token,
            ),
            profile=PROFILE,
            sign_in_facts={"username": "jane"},
        )


class StubProvider:
    """A provider id's definition plus the authenticators the app built from it."""

    def __init__(
        self,
        *,
        persist_scopes: bool = False,
        required_scopes: tuple[str, ...] = (),
    ) -> None:
        self.persist_scopes = persist_scopes
        self.required_scopes = required_scopes
        self.instances: dict[str, StubAuthenticator] = {}
        self.definition = OAuthProviderDefinition(factory=self._create, resolvers=COMMON_RESOLVERS)

    def _create(self, raw: dict[str, Any], path: str, deps: ProviderDeps) -> OAuthProviderBuild:
        settings = validate_model(OAuthEnvSettings, raw, path)
        authenticator = StubAuthenticator(
            settings=settings,
            persist_scopes=self.persist_scopes,
            required_scopes=self.required_scopes,
            additional_scopes=settings.additional_scopes,
        )
        env = path.rsplit(".", 1)[-1]
        self.instances[env] = authenticator
        return OAuthProviderBuild(authenticator=authenticator, settings=settings)


def reset_all(*providers: StubProvider) -> None:
    for provider in providers:
        for authenticator in provider.instances.values():
            authenticator.reset()


def stub_definition(**kwargs: Any) -> ProviderDefinition:
    """Only the definition, for tests that never script the authenticator."""
    return StubProvider(**kwargs).definition
