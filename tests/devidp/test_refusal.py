"""The development identity provider refuses to start outside development mode, on a
host other than loopback, and with several worker processes: the server does not start
and says why (exit 2, the key path first). Under gunicorn, where the config's host is not
where the process listens, each worker checks its sockets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli_server import default_config, run_cli, without, write_config
from tests.support.oidc_provider import free_port
from tests.support.server import ROOT

PREFIX = "auth-backend: invalid configuration: auth.devIdentityProvider"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NODE_ENV"}
    env.update(extra)
    return env


def test_refused_outside_development(tmp_path: Path) -> None:
    # Without guest (which refuses production on its own) and with a session secret.
    config = without(default_config(free_port()), "auth", "providers", "guest")
    config["auth"]["session"] = {"secret": "a-production-secret-of-32-or-more-chars"}
    path = write_config(tmp_path / "prod.yaml", config)
    result = run_cli(
        "serve", "--config", str(path), "--data-dir", str(tmp_path), env=_env(NODE_ENV="production")
    )
    assert result.returncode == 2, result.stderr
    assert f"{PREFIX}.enabled: refusing to start the development identity provider " in (
        result.stderr
    )
    assert "outside development mode" in result.stderr


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_refused_on_a_host_other_than_loopback(tmp_path: Path, host: str) -> None:
    path = write_config(tmp_path / "dev.yaml", default_config(free_port()))
    result = run_cli(
        "serve",
        "--development",
        "--config",
        str(path),
        "--host",
        host,
        "--data-dir",
        str(tmp_path),
        env=_env(),
    )
    assert result.returncode == 2, result.stderr
    assert f"while the server listens on '{host}'; it runs only on loopback" in result.stderr


def test_refused_with_several_workers(tmp_path: Path) -> None:
    path = write_config(tmp_path / "dev.yaml", default_config(free_port()))
    result = run_cli(
        "serve",
        "--development",
        "--config",
        str(path),
        "--workers",
        "2",
        "--data-dir",
        str(tmp_path),
        env=_env(),
    )
    assert result.returncode == 2, result.stderr
    assert f"{PREFIX}: the development identity provider keeps its codes and tokens" in (
        result.stderr
    )


@pytest.mark.parametrize("bind", ["0.0.0.0:{port}", "unix:{tmp}/auth.sock"], ids=["any", "unix"])
def test_refused_under_gunicorn_bound_elsewhere(tmp_path: Path, bind: str) -> None:
    # The config says 127.0.0.1; gunicorn binds where it is told.
    port = free_port()
    path = write_config(tmp_path / "dev.yaml", default_config(port))
    result = subprocess.run(
        [
            sys.executable,
            *("-m", "gunicorn", "-k", "app.server.workers.Worker", "-w", "1"),
            *("-b", bind.format(port=port, tmp=tmp_path)),
            "app.server.asgi:create_from_environment()",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(
            AUTH_BACKEND_CONFIG=str(path),
            AUTH_BACKEND_DATA_DIR=str(tmp_path / "data"),
            AUTH_BACKEND_DEVELOPMENT="1",
            AUTH_BACKEND_LOG_FORMAT="text",
        ),
    )
    assert result.returncode != 0, result.stderr
    assert (
        "auth.devIdentityProvider.enabled: refusing to start the development identity provider "
        "while the server listens on "
    ) in result.stderr
    assert "Worker failed to boot" in result.stderr
