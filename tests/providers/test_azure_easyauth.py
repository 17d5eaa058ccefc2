"""The ``azureEasyAuth`` proxy provider: App Service checks, trusted peers, token headers."""

from __future__ import annotations

from typing import Any

import pytest

from app.config.validation import ConfigError
from app.core.errors import AuthenticationError, NotFoundError
from app.identity.resolvers import COMMON_RESOLVERS, ResolverConfigError
from app.identity.types import ProfileInfo, SignInInfo
from app.providers import azure_easyauth
from app.providers.azure_easyauth import AzureEasyAuthAuthenticator
from app.providers.registry import REGISTRY
from tests.fakes.proxy_keys import DELETE, ProxyKeyServer, unsigned_jwt
from tests.proxy.helpers import (
    APP_SERVICE_ENV,
    ENTRA_OID,
    PROXY_PEER,
    deps,
    entra_id_token,
    proxy_request,
    resolver_context,
)

pytestmark = pytest.mark.anyio

PATH = "auth.providers.azureEasyAuth"
ID_HEADER = "x-ms-token-aad-id-token"
ACCESS_HEADER = "x-ms-token-aad-access-token"
TRUSTED = {"trustedProxies": ["10.20.30.0/24"]}


def _make(
    raw: dict[str, Any] | None = None, environ: dict[str, str] | None = None
) -> AzureEasyAuthAuthenticator:
    create = azure_easyauth.make_create(APP_SERVICE_ENV if environ is None else environ)
    build = create(dict(TRUSTED if raw is None else raw), PATH, deps(ProxyKeyServer()))
    assert isinstance(build.authenticator, AzureEasyAuthAuthenticator)
    return build.authenticator


# -- App Service environment ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"WEBSITE_SKU": DELETE}, "not running on Azure App Services"),
        ({"WEBSITE_AUTH_ENABLED": DELETE}, "does not have authentication enabled"),
        ({"WEBSITE_AUTH_ENABLED": "False"}, "does not have authentication enabled"),
        ({"WEBSITE_AUTH_DEFAULT_PROVIDER": "Google"}, "not Entra ID"),
        ({"WEBSITE_AUTH_TOKEN_STORE": "false"}, "Token Store is not enabled"),
    ],
)
def test_the_server_does_not_start_outside_a_configured_app_service(
    change: dict[str, Any], message: str
) -> None:
    environ = {k: v for k, v in {**APP_SERVICE_ENV, **change}.items() if v is not DELETE}
    with pytest.raises(ConfigError, match=message) as info:
        _make(environ=environ)
    assert str(info.value).startswith("auth.providers.azureEasyAuth: ")


async def test_the_checks_are_case_insensitive(anyio_backend: str) -> None:
    authenticator = _make(
        environ={
            "WEBSITE_SKU": "Free",
            "WEBSITE_AUTH_ENABLED": "TRUE",
            "WEBSITE_AUTH_DEFAULT_PROVIDER": "azureactivedirectory",
            "WEBSITE_AUTH_TOKEN_STORE": "True",
        }
    )
    # Built, and it serves: the environment's spelling changed nothing about sign-in.
    result = await authenticator.authenticate(
        proxy_request({ID_HEADER: entra_id_token()}, peer=PROXY_PEER)
    )
    assert result.sign_in_facts["id"] == ENTRA_OID


def test_the_registered_factory_reads_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in APP_SERVICE_ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="WEBSITE_SKU"):
        azure_easyauth.create(dict(TRUSTED), PATH, deps(ProxyKeyServer()))
    for name, value in APP_SERVICE_ENV.items():
        monkeypatch.setenv(name, value)
    build = azure_easyauth.create(dict(TRUSTED), PATH, deps(ProxyKeyServer()))
    assert isinstance(build.authenticator, AzureEasyAuthAuthenticator)


# -- trust ------------------------------------------------------------------------------


async def test_without_trusted_proxies_every_request_is_refused(anyio_backend: str) -> None:
    with pytest.raises(AuthenticationError) as info:
        await _make({}).authenticate(proxy_request({ID_HEADER: entra_id_token()}))
    assert "'auth.providers.azureEasyAuth.trustedProxies'" in info.value.message


@pytest.mark.parametrize("peer", ["10.20.31.1", "testclient", None])
async def test_headers_from_other_peers_are_refused(anyio_backend: str, peer: str | None) -> None:
    with pytest.raises(AuthenticationError, match="Easy Auth token headers are trusted only"):
        await _make().authenticate(proxy_request({ID_HEADER: entra_id_token()}, peer=peer))


# -- tokens -----------------------------------------------------------------------------


async def test_the_id_token_signs_in(anyio_backend: str) -> None:
    headers = {ID_HEADER: entra_id_token(), ACCESS_HEADER: "aad-access-token"}
    result = await _make().authenticate(proxy_request(headers, peer=PROXY_PEER))
    assert result.profile == ProfileInfo(email="jane@example.com", display_name="Jane Doe")
    assert result.provider_info == {"accessToken": "aad-access-token"}
    assert result.sign_in_facts["id"] == ENTRA_OID
    assert result.sign_in_facts["claims"]["ver"] == "2.0"


async def test_without_an_access_token_provider_info_is_empty(anyio_backend: str) -> None:
    result = await _make().authenticate(proxy_request({ID_HEADER: entra_id_token()}))
    assert result.provider_info == {}


async def test_a_missing_id_token_is_401_naming_the_header(anyio_backend: str) -> None:
    with pytest.raises(AuthenticationError) as info:
        await _make().authenticate(proxy_request({ACCESS_HEADER: "x"}))
    assert info.value.message == f"Missing {ID_HEADER} header"


@pytest.mark.parametrize("ver", ["1.0", 2.0, DELETE])
async def test_only_version_2_tokens_are_accepted(anyio_backend: str, ver: Any) -> None:
    with pytest.raises(AuthenticationError, match="is not version 2.0"):
        await _make().authenticate(proxy_request({ID_HEADER: entra_id_token(ver=ver)}))


async def test_a_malformed_id_token_is_401(anyio_backend: str) -> None:
    with pytest.raises(AuthenticationError, match="malformed"):
        await _make().authenticate(proxy_request({ID_HEADER: "garbage"}))


# -- resolvers ----------------------------------------------------------------------------


def test_the_resolver_set() -> None:
    assert set(REGISTRY["azureEasyAuth"].resolvers) == {
        "idMatchingUserEntityAnnotation",
        *COMMON_RESOLVERS,
    }


async def test_id_matching_user_entity_annotation(anyio_backend: str) -> None:
    resolve = azure_easyauth.RESOLVERS["idMatchingUserEntityAnnotation"]({})
    info = SignInInfo("azureEasyAuth", ProfileInfo(), {"id": ENTRA_OID})
    assert (await resolve(info, resolver_context())).user_entity_ref == "user:default/jane"
    with pytest.raises(NotFoundError):
        await resolve(SignInInfo("azureEasyAuth", ProfileInfo(), {"id": "x"}), resolver_context())
    with pytest.raises(AuthenticationError, match="User profile contained no id"):
        await resolve(SignInInfo("azureEasyAuth", ProfileInfo(), {"id": None}), resolver_context())


def test_the_id_resolver_takes_no_options() -> None:
    with pytest.raises(ResolverConfigError):
        azure_easyauth.RESOLVERS["idMatchingUserEntityAnnotation"]({"x": 1})


async def test_an_id_token_without_oid_reaches_the_resolver_as_no_id(anyio_backend: str) -> None:
    token = unsigned_jwt({"ver": "2.0", "name": "N"})
    result = await _make().authenticate(proxy_request({ID_HEADER: token}))
    assert result.sign_in_facts["id"] is None
