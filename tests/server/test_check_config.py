"""``auth-backend check-config``: callback URLs, cookie attributes and warnings per
provider and environment; exit 0, 2 on an invalid configuration, 1 with ``--strict`` and
warnings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.cli_server import DEFAULT_CONFIG, run_cli, write_config


def _check(tmp_path: Path, config: dict[str, Any], *flags: str) -> Any:
    path = write_config(tmp_path / "c.yaml", config)
    return run_cli("check-config", "--config", str(path), *flags)


def test_the_default_config(tmp_path: Path) -> None:
    result = run_cli("check-config", "--config", str(DEFAULT_CONFIG))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("configuration OK (checked for development)\n")
    assert "app origin: http://localhost:7007" in out
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
        "session": {"secret": "s"},
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
    assert "configuration OK (checked for production)" in out
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


def test_an_invalid_config_exits_2_with_the_key_path(tmp_path: Path) -> None:
    result = _check(tmp_path, {"app": {}, "backend": {"baseUrl": "http://localhost:7007"}})
    assert result.returncode == 2
    assert "app.baseUrl: Field required" in result.stderr
    assert result.stdout == ""


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
            "session": {"secret": "s" * 32},
            "providers": {"oidc": {"production": oidc}},
            "catalog": {"remote": {"baseUrl": "https://catalog.corp.example", "token": "t"}},
        },
    }
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")},
        "HTTPS_PROXY": "http://user:secret@proxy.corp.example:3128",
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
    assert "secret" not in result.stdout
