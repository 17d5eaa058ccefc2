"""``auth-backend check-config``: callback URLs, cookie attributes and warnings per
provider and environment; exit 0, 2 on an invalid configuration, 1 with ``--strict`` and
warnings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.config.discovery import read_discovery
from app.config.settings import read_settings
from app.server.check_authorization import check_authorization
from app.server.check_config import Report
from app.server.outbound_hosts import outbound_urls
from tests.support.cli_server import DEFAULT_CONFIG, run_cli, write_config


def _check(tmp_path: Path, config: dict[str, Any], *flags: str) -> Any:
    path = write_config(tmp_path / "c.yaml", config)
    return run_cli("check-config", "--config", str(path), *flags)


def test_the_default_config(tmp_path: Path) -> None:
    result = run_cli("check-config", "--config", str(DEFAULT_CONFIG))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("configuration OK for development (`serve --development`;")
    assert "app origin: http://localhost:7007" in out
    assert "token issuer: http://localhost:7007/api/auth (backend.baseUrl + /api/auth)" in out
    assert "catalog: none (sign-in resolvers find no users)" in out
    assert (
        "provider oidc (OAuth)\n"
        "  environment development (the frontend's)\n"
        "    callback URL to register: http://localhost:7007/api/auth/oidc/handler/frame\n"
        "    cookie oidc-nonce: Path=/api/auth/oidc/handler; SameSite=Lax; Secure=no; "
        "HttpOnly; Max-Age=600\n"
        "    cookie oidc-refresh-token: Path=/api/auth/oidc; SameSite=Lax; Secure=no; "
        "HttpOnly; Max-Age=86400000\n"
        "    sign-out: federatedLogout: false (revokes, ends the session here; the user "
        "stays in the app)\n"
    ) in out
    assert "provider guest (proxy): no callback URL, no cookies" in out
    assert "development identity provider: enabled at http://localhost:7007/dev-idp" in out
    assert "  clients: backstage-dev" in out
    # The only warning: no session secret (development generates one).
    assert "warnings (1):\n  - auth.session.secret is not set" in out
    # --strict: warnings are errors.
    strict = run_cli("check-config", "--config", str(DEFAULT_CONFIG), "--strict")
    assert strict.returncode == 1
    assert "warnings are errors (--strict)" in strict.stderr


def test_sign_out_shows_federated_logout(tmp_path: Path) -> None:
    oidc = {
        "metadataUrl": "https://idp.example.com/.well-known/openid-configuration",
        "clientId": "a",
        "clientSecret": "b",
    }
    config: dict[str, Any] = {
        "app": {"baseUrl": "https://backstage.example.com"},
        "backend": {"baseUrl": "https://backstage.example.com"},
        "auth": {
            "providers": {
                "oidc": {
                    "development": oidc,
                    "production": {
                        **oidc,
                        "federatedLogout": True,
                        "postLogoutRedirectUri": "https://backstage.example.com/",
                    },
                },
                "auth0": {
                    "development": {"clientId": "a", "clientSecret": "b", "domain": "t.auth0.com"}
                },
                "github": {"development": {"clientId": "a", "clientSecret": "b"}},
            }
        },
    }
    result = _check(tmp_path, config)
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines() if "sign-out:" in line]
    # auth0 as Backstage: sign-out always passes through Auth0 (and no line for github).
    auth0 = (
        "sign-out: federatedLogout: false (the browser goes to Auth0's /v2/logout: ends the "
        "Auth0 session)"
    )
    assert auth0 in lines
    lines.remove(auth0)
    assert sorted(lines) == [
        "sign-out: federatedLogout: false (revokes, ends the session here; the user stays in "
        "the app)",
        "sign-out: federatedLogout: true (the browser goes to the provider's "
        "end_session_endpoint, which ends the user's session for every application; then "
        "back to https://backstage.example.com/)",
    ]


def test_the_default_config_is_refused_for_production() -> None:
    result = run_cli("check-config", "--config", str(DEFAULT_CONFIG), "--production")
    assert result.returncode == 2
    assert (
        result.stderr.strip().splitlines()[-1].startswith("auth-backend: invalid configuration: ")
    )


RISKY: dict[str, Any] = {
    "app": {"baseUrl": "http://backstage.example.com"},
    "backend": {"baseUrl": "https://auth.example.com"},
    "auth": {
        "session": {"secret": "kP3v9QxN2m-Rt8Yw_Lz4Hs7Jb1Fd6Gc0Ae5Ui"},
        "providers": {
            "guest": {"dangerouslyAllowOutsideDevelopment": True},
            "github": {
                "production": {"clientId": "a", "clientSecret": "b", "sessionDuration": "8h"},
                "staging": {
                    "clientId": "a",
                    "clientSecret": "b",
                    "callbackUrl": "http://staging.example.com/api/auth/github/handler/frame",
                },
            },
        },
    },
}


def test_risky_settings_are_warned_about(tmp_path: Path) -> None:
    result = _check(tmp_path, RISKY, "--production")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("configuration OK for production (`serve` without --development)\n")
    assert (
        "  environment production\n"
        "    callback URL to register: https://auth.example.com/api/auth/github/handler/frame\n"
        "    cookie github-nonce: Path=/api/auth/github/handler; SameSite=None; Secure=yes; "
        "HttpOnly; Max-Age=600\n"
        "    cookie github-refresh-token: Path=/api/auth/github; SameSite=None; Secure=yes; "
        "HttpOnly; Max-Age=28800\n"
    ) in out
    assert "    callback URL to register: http://staging.example.com/api/auth/github/" in out
    warnings = out.split("warnings (")[1]
    assert "app.baseUrl: http://backstage.example.com is plain http" in warnings
    assert "auth.providers.github.staging.callbackUrl: http://staging.example.com/" in warnings
    assert "auth.providers.github.production: cookies are SameSite=None" in warnings
    assert "auth.providers.guest.dangerouslyAllowOutsideDevelopment: anyone" in warnings
    assert "session.secret" not in warnings
    assert _check(tmp_path, RISKY, "--production", "--strict").returncode == 1


def test_a_missing_session_secret_is_an_error_for_production(tmp_path: Path) -> None:
    config = {**RISKY, "auth": {**RISKY["auth"], "session": {}}}
    development = _check(tmp_path, config)
    assert development.returncode == 0
    assert "auth.session.secret is not set" in development.stdout
    production = _check(tmp_path, config, "--production")
    assert production.returncode == 2
    assert "auth.session.secret: required outside development" in production.stderr


def test_weak_session_secrets(tmp_path: Path) -> None:
    config = {**RISKY, "auth": {**RISKY["auth"], "session": {"secret": "backstage"}}}
    production = _check(tmp_path, config, "--production", "--strict")
    assert production.returncode == 2
    assert "auth.session.secret: 9 characters; outside development it must be at least 32" in (
        production.stderr
    )
    development = _check(tmp_path, config)
    assert "auth.session.secret: looks guessable (shorter than 32 characters)" in (
        development.stdout
    )
    repeated = {"secret": "backstage" * 4, "previousSecrets": ["a1" * 20]}
    config = {**RISKY, "auth": {**RISKY["auth"], "session": repeated}}
    production = _check(tmp_path, config, "--production")
    assert production.returncode == 0, production.stderr
    warnings = production.stdout.split("warnings (")[1]
    assert "auth.session.secret: looks guessable (only 8 distinct characters)" in warnings
    assert "auth.session.previousSecrets.0: looks guessable (only 2 distinct" in warnings


def test_trusted_ranges_wider_than_a_few_proxies(tmp_path: Path) -> None:
    config = {
        **RISKY,
        "backend": {
            **RISKY["backend"],
            "trustedProxies": ["127.0.0.0/8", "10.0.0.0/28", "10.1.0.7", "fd00::/120"],
        },
        "auth": {
            **RISKY["auth"],
            "providers": {
                "oauth2Proxy": {
                    "trustedProxies": "10.2.0.0/16, 10.3.0.1",
                    "signIn": {"resolvers": [{"resolver": "forwardedUserMatchingUserEntityName"}]},
                }
            },
        },
    }
    result = _check(tmp_path, config, "--production")
    assert result.returncode == 0, result.stderr
    warnings = result.stdout.split("warnings (")[1]
    assert "backend.trustedProxies: 127.0.0.0/8 trusts 16777216 addresses" in warnings
    assert "backend.trustedProxies: fd00::/120 trusts 256 addresses" in warnings
    assert "auth.providers.oauth2Proxy.trustedProxies: 10.2.0.0/16 trusts 65536" in warnings
    # A /28 (16 addresses) and single addresses are what proxies look like.
    assert "10.0.0.0/28" not in warnings and "10.1.0.7" not in warnings
    assert "10.3.0.1" not in warnings


def test_an_invalid_config_exits_2_with_the_key_path(tmp_path: Path) -> None:
    result = _check(tmp_path, {"app": {}, "backend": {"baseUrl": "http://localhost:7007"}})
    assert result.returncode == 2
    assert "app.baseUrl: Field required" in result.stderr
    assert result.stdout == ""


PRODUCTION_ONLY: dict[str, Any] = {
    "app": {"baseUrl": "https://backstage.example.com"},
    "backend": {"baseUrl": "https://backstage.example.com"},
    "auth": {
        "session": {"secret": "a-long-enough-session-secret-for-production-use"},
        "providers": {"github": {"production": {"clientId": "id", "clientSecret": "secret"}}},
    },
}


def test_a_provider_without_the_frontends_environment_is_warned_about(tmp_path: Path) -> None:
    result = _check(tmp_path, PRODUCTION_ONLY, "--production", "--strict")
    assert result.returncode == 1
    assert (
        "auth.providers.github: no configuration for the frontend's environment 'development'"
        in result.stdout
    )
    fixed = {**PRODUCTION_ONLY, "auth": {**PRODUCTION_ONLY["auth"], "environment": "production"}}
    assert _check(tmp_path, fixed, "--production", "--strict").returncode == 0


def test_a_missing_catalog_file_is_a_warning(tmp_path: Path) -> None:
    config = {
        **PRODUCTION_ONLY,
        "auth": {**PRODUCTION_ONLY["auth"], "environment": "production"},
        "catalog": {"locations": [{"type": "file", "target": "./org.yaml"}]},
    }
    result = _check(tmp_path, config, "--production", "--strict")
    assert result.returncode == 1
    assert f"catalog.locations: {tmp_path / 'org.yaml'} does not exist" in result.stdout
    (tmp_path / "org.yaml").write_text("")
    assert _check(tmp_path, config, "--production", "--strict").returncode == 0


def test_guest_in_production_is_flagged(tmp_path: Path) -> None:
    config = {
        **PRODUCTION_ONLY,
        "auth": {"session": PRODUCTION_ONLY["auth"]["session"], "providers": {"guest": {}}},
    }
    production = _check(tmp_path, config, "--production")
    assert "auth.providers.guest: refused in production (every sign-in answers 403)" in (
        production.stdout
    )
    assert "auth.providers.guest" not in _check(tmp_path, config).stdout


def test_a_shared_config_names_the_discovered_issuer_and_catalog(tmp_path: Path) -> None:
    endpoint = {"target": "https://auth.example.com/api/{{pluginId}}", "plugins": ["auth"]}
    config = {
        "app": {"baseUrl": "https://backstage.example.com"},
        "backend": {"baseUrl": "https://backstage.example.com"},
        "discovery": {"endpoints": [endpoint]},
        "catalog": {"locations": [{"type": "file", "target": "org.yaml"}]},
        "auth": {"providers": {"guest": {}}},
    }
    result = _check(tmp_path, config)
    assert result.returncode == 0, result.stderr
    assert (
        "token issuer: https://auth.example.com/api/auth (discovery.endpoints, plugin 'auth')"
    ) in result.stdout
    assert "catalog: the Backstage catalog at http://localhost:7007/api/catalog" in result.stdout


def test_authorization_clients_are_listed_with_warnings(tmp_path: Path) -> None:
    config: dict[str, Any] = {
        "app": {"baseUrl": "https://backstage.example.com"},
        "backend": {"baseUrl": "https://backstage.example.com"},
        "auth": {
            "session": {"secret": "kP3v9QxN2m-Rt8Yw_Lz4Hs7Jb1Fd6Gc0Ae5Ui"},
            "providers": {"guest": {}},
            "staticClients": [
                {
                    "clientId": "cli",
                    "clientName": "Backstage CLI",
                    "redirectUris": ["http://[::1]/cb", "https://cli.example.com/cb"],
                },
                {
                    "clientId": "intranet",
                    "clientSecret": "short-secret",
                    "redirectUris": ["http://intranet.example.com/cb"],
                },
                {
                    "clientId": "good",
                    "clientSecret": "x" * 32,
                    "redirectUris": ["https://good.example.com/cb"],
                },
            ],
            "experimentalRefreshToken": {"enabled": True, "maxTokensPerUser": 5},
        },
    }
    result = _check(tmp_path, config)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert (
        "authorization server (CLI and MCP clients): https://backstage.example.com/api/auth/v1\n"
        "  consent page: https://backstage.example.com/oauth2/authorize/<id> "
        "(this server's demo page)\n"
        "  refresh tokens: enabled (lifetime 30 days, rotation up to 1 year, 5 per user; "
        "stored as HMAC-SHA256 keyed from auth.session.secret)\n"
        "  client cli (Backstage CLI): public (PKCE only)\n"
        "    redirect URI: http://[::1]/cb (loopback: any port)\n"
        "    redirect URI: https://cli.example.com/cb\n"
        "  client intranet (intranet): confidential (client secret)\n"
        "    redirect URI: http://intranet.example.com/cb\n"
        "  client good (good): confidential (client secret)\n"
    ) in out
    warnings = out.split("warnings (")[1]
    assert warnings.startswith("2):")
    assert (
        "auth.staticClients[1] (intranet): redirect URI http://intranet.example.com/cb is "
        "plain http on a host that is not loopback"
    ) in warnings
    assert (
        "auth.staticClients[1] (intranet): the client secret has 12 characters: use a random "
        "one of at least 32"
    ) in warnings
    assert _check(tmp_path, config, "--strict").returncode == 1


def test_the_consent_page_of_a_backstage_app(tmp_path: Path) -> None:
    config: dict[str, Any] = {
        "app": {"baseUrl": "https://backstage.example.com"},
        "backend": {"baseUrl": "https://auth.example.com"},
        "auth": {
            "session": {"secret": "kP3v9QxN2m-Rt8Yw_Lz4Hs7Jb1Fd6Gc0Ae5Ui"},
            "staticClients": [{"clientId": "cli", "redirectUris": ["http://127.0.0.1/cb"]}],
            "experimentalDynamicClientRegistration": {"enabled": True},
        },
    }
    result = _check(tmp_path, config)
    assert result.returncode == 0, result.stderr
    assert (
        "  consent page: https://backstage.example.com/oauth2/authorize/<id> "
        "(the Backstage app's page)\n"
    ) in result.stdout
    warnings = result.stdout.split("warnings (")[1]
    assert "experimentalDynamicClientRegistration" in warnings


def test_refresh_tokens_without_a_configured_secret_are_unkeyed() -> None:
    settings = read_settings(
        {
            "app": {"baseUrl": "http://localhost:7007"},
            "backend": {"baseUrl": "http://localhost:7007"},
            "auth": {
                "staticClients": [{"clientId": "cli", "redirectUris": ["http://127.0.0.1/cb"]}],
                "experimentalRefreshToken": {
                    "enabled": True,
                    "tokenLifetime": {"hours": 36},
                    "dangerouslyDisableCatalogPresenceCheck": True,
                },
            },
        }
    )
    report = Report()
    check_authorization(report, settings)
    assert (
        "  refresh tokens: enabled (lifetime 129600 s, rotation up to 1 year, 20 per user, "
        "no catalog check; stored as SHA-256, unkeyed)"
    ) in report.lines
    assert report.warnings == []


def test_the_legacy_refresh_cookie_window_is_shown_and_a_past_one_warned_about(
    tmp_path: Path,
) -> None:
    def with_until(until: str) -> dict[str, Any]:
        session = {**RISKY["auth"]["session"], "acceptLegacyRefreshCookiesUntil": until}
        return {**RISKY, "auth": {**RISKY["auth"], "session": session}}

    future = _check(tmp_path, with_until("2999-01-01T00:00:00Z"))
    assert "Backstage refresh cookies: each accepted once until 2999-01-01T00:00:00+00:00" in (
        future.stdout
    )
    past = _check(tmp_path, with_until("2001-01-01T00:00:00Z"))
    assert "acceptLegacyRefreshCookiesUntil: 2001-01-01T00:00:00+00:00 has passed" in past.stdout


def test_outbound_hosts_show_their_proxy(tmp_path: Path) -> None:
    import os

    import certifi
    import trustme

    bundle = tmp_path / "corporate-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(bundle))

    oidc = {
        "metadataUrl": "https://idp.example.com/.well-known/openid-configuration",
        "clientId": "a",
        "clientSecret": "b",
        "callbackUrl": "https://backstage.example.com/api/auth/oidc/handler/frame",
    }
    config: dict[str, Any] = {
        "app": {"baseUrl": "https://backstage.example.com"},
        "backend": {"baseUrl": "https://backstage.example.com"},
        "auth": {
            "session": {"secret": "kP3v9QxN2m-Rt8Yw_Lz4Hs7Jb1Fd6Gc0Ae5Ui"},
            "providers": {"oidc": {"production": oidc}},
            "catalog": {"remote": {"baseUrl": "https://catalog.corp.example", "token": "t"}},
        },
    }
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")},
        "HTTPS_PROXY": "http://user:hunter2@proxy.corp.example:3128",
        "NO_PROXY": ".corp.example",
        "NODE_EXTRA_CA_CERTS": str(bundle),
    }
    result = run_cli(
        "check-config", "--config", str(write_config(tmp_path / "c.yaml", config)), env=env
    )
    assert result.returncode == 0, result.stderr
    assert (
        f"outbound TLS trust: the default bundle ({certifi.where()}) plus "
        f"NODE_EXTRA_CA_CERTS={bundle}\n"
        "outbound hosts (HTTPS_PROXY / HTTP_PROXY / NO_PROXY):\n"
        "  https://idp.example.com: via proxy http://proxy.corp.example:3128 "
        "(auth.providers.oidc.production.metadataUrl)\n"
        "  https://catalog.corp.example: direct (NO_PROXY) (auth.catalog.remote.baseUrl)\n"
    ) in result.stdout
    # The browser's URLs are not the server's outbound calls; credentials are not printed.
    assert "backstage.example.com: " not in result.stdout
    assert "hunter2" not in result.stdout


def test_the_catalog_found_through_discovery_is_an_outbound_host() -> None:
    raw: dict[str, Any] = {
        "discovery": {
            "endpoints": [
                {"target": "http://auth.internal:7008/api/{{pluginId}}", "plugins": ["auth"]},
                {"target": "http://backstage.internal:7007/api/{{pluginId}}", "plugins": ["*"]},
            ]
        },
        "auth": {},
    }
    discovery = read_discovery(
        raw, backend_base_url="https://backstage.example.com", listen_host="", listen_port=7007
    )
    assert outbound_urls(raw, discovery) == [
        ("discovery (catalog)", "http://backstage.internal:7007/api/catalog")
    ]
    # The explicit override wins, as it does for the catalog itself.
    raw["auth"] = {"catalog": {"remote": {"baseUrl": "https://catalog.corp.example"}}}
    assert outbound_urls(raw, discovery) == [
        ("auth.catalog.remote.baseUrl", "https://catalog.corp.example")
    ]
    # Without discovery naming auth, the catalog is the files: nothing to call.
    assert (
        outbound_urls(
            {"auth": {}},
            read_discovery({}, backend_base_url="http://x", listen_host="", listen_port=1),
        )
        == []
    )
