"""The installed package (what the Docker image runs) carries everything it reads at start:
the specs, the default config, the demo page and the migrations."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SMOKE = """
from starlette.testclient import TestClient
import app
from app.server.application import create_app
from app.server.wiring import Dependencies
from app.server.cli import DEFAULT_CONFIG, _settings
from app.core.clock import SystemClock
from pathlib import Path
import tempfile
assert app.__file__.startswith({target!r}), app.__file__
data = Path(tempfile.mkdtemp())
application = create_app(
    _settings([DEFAULT_CONFIG]), development=True,
    deps=Dependencies(clock=SystemClock(), data_dir=data),
)
with TestClient(application) as client:
    assert client.get("/api/auth/guest/refresh").status_code == 200
    assert client.get("/api/auth/oidc/openapi.json").json()["paths"]["/start"]
    assert client.get("/").status_code == 200
    assert client.get("/readyz").json()["status"] == "ok"
assert (data / "auth.sqlite").exists()
print("installed package OK")
"""


def test_the_wheel_serves_from_anywhere(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True,
        cwd=tmp_path,
    )
    [wheel] = list(wheels.glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"app/spec/openapi.yaml", "app/default-config.yaml", "app/static/demo.js"} <= names
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    # The installed copy first, the test environment's dependencies after it; run away
    # from the checkout so nothing is found there by accident.
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-c", SMOKE.format(target=str(target))],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "installed package OK" in result.stdout
