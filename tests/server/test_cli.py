"""The ``auth-backend`` command: config loading errors stop the start with the key path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


BASE = """
app:
  baseUrl: http://localhost:3000
backend:
  baseUrl: http://localhost:7007
"""


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("app: {}\nbackend: {baseUrl: http://localhost:7007}\n", "app.baseUrl: Field required"),
        (
            BASE + "auth:\n  providers:\n    oidc:\n      development:\n        clientId: x\n",
            "auth.providers.oidc.development.clientSecret: Field required",
        ),
        (
            BASE + "auth:\n  session: {secret: s}\n  providers:\n    oidc:\n      development:\n"
            "        metadataUrl: http://idp/.well-known/openid-configuration\n"
            "        clientId: x\n        clientSecret: y\n"
            "        signIn: {resolvers: [{resolver: nope}]}\n",
            "Sign-in resolver 'nope' is not available",
        ),
        (BASE + "auth:\n  backstageTokenExpiration: soon\n", "auth.backstageTokenExpiration"),
        (
            BASE + "auth:\n  experimentalExtraAllowedOrigins: ['not a pattern']\n",
            "auth.experimentalExtraAllowedOrigins",
        ),
        ("app: [1, 2\n", "is not valid YAML"),
    ],
)
def test_invalid_config_stops_with_the_key_path(tmp_path: Path, config: str, message: str) -> None:
    result = _run("check-config", "--config", str(_write(tmp_path, "bad.yaml", config)))
    assert result.returncode == 2
    assert message in result.stderr


def test_later_files_override_and_env_vars_substitute(tmp_path: Path) -> None:
    first = _write(tmp_path, "a.yaml", BASE + "auth:\n  providers:\n    guest: {}\n")
    second = _write(
        tmp_path, "b.yaml", "backend:\n  baseUrl: ${PUBLIC_URL}\nunrelatedPlugin: {x: 1}\n"
    )
    result = _run(
        "check-config",
        "--config",
        str(first),
        "--config",
        str(second),
        env={"PUBLIC_URL": "https://auth.example.com", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


def test_unset_env_var_drops_the_value_and_names_the_key(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        "c.yaml",
        "app:\n  baseUrl: ${NOT_SET_ANYWHERE}\nbackend:\n  baseUrl: http://localhost:7007\n",
    )
    result = _run("check-config", "--config", str(config), env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "app.baseUrl: Field required" in result.stderr


def test_production_without_session_secret_refuses_oauth_providers(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        "p.yaml",
        BASE + "auth:\n  providers:\n    oauth2:\n      production:\n"
        "        clientId: x\n        clientSecret: y\n"
        "        authorizationUrl: https://idp.example.com/authorize\n"
        "        tokenUrl: https://idp.example.com/token\n",
    )
    result = _run(
        "serve",
        "--config",
        str(config),
        "--port",
        "0",
        env={"PATH": "/usr/bin:/bin", "NODE_ENV": "production"},
    )
    assert result.returncode == 2
    assert "auth.session.secret: required outside development" in result.stderr


def test_unknown_provider_is_logged_and_not_mounted(tmp_path: Path) -> None:
    config = _write(tmp_path, "u.yaml", BASE + "auth:\n  providers:\n    frobnicator: {x: {}}\n")
    result = _run("check-config", "--config", str(config))
    assert result.returncode == 0
    assert "auth provider 'frobnicator' is not implemented by this server; not mounted" in (
        result.stderr
    )


@pytest.mark.parametrize("algorithm", ["HS256", "EdDSA"])
def test_an_unsupported_token_algorithm_is_one_line_and_exit_2(
    tmp_path: Path, algorithm: str
) -> None:
    config = _write(tmp_path, "a.yaml", BASE + f"auth:\n  identityTokenAlgorithm: {algorithm}\n")
    result = _run("check-config", "--config", str(config))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"auth.identityTokenAlgorithm: '{algorithm}' is not supported" in result.stderr


def test_an_unreachable_database_at_start_is_one_line_and_exit_3(tmp_path: Path) -> None:
    from tests.support.oidc_provider import free_port

    closed = free_port()  # nothing listens there
    config = _write(
        tmp_path,
        "pg.yaml",
        BASE + "  database:\n    client: pg\n    connection:\n"
        f"      host: 127.0.0.1\n      port: {closed}\n      user: u\n      password: p\n",
    )
    result = _run(
        "serve",
        "--config",
        str(config),
        "--port",
        "0",
        "--log-format",
        "text",
        "--data-dir",
        str(tmp_path / "data"),
        "--development",
    )
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    (line,) = [x for x in result.stderr.splitlines() if "cannot start:" in x]
    assert "Connection refused; check backend.database" in line


def test_an_unknown_log_level_is_a_usage_error(tmp_path: Path) -> None:
    result = _run("serve", "--log-level", "verbose")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "invalid choice: 'verbose'" in result.stderr
