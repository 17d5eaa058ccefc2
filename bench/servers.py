"""The peer (mock IdP + Backstage) and our server: how to prepare, configure and start them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SHARED_PEER = Path("/work/shared/peers/backstage")
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Ports:
    idp: int
    backstage: int
    ours: int  # one worker; N workers listen on ours + 1, one worker on a file on ours + 2


@dataclass(frozen=True)
class ServerSpec:
    """One run configuration: how to start it and where it answers."""

    name: str  # "backstage", "ours-1w", "ours-2w"
    label: str  # human description for the report
    cmd: tuple[str, ...]
    cwd: Path
    env: dict[str, str]
    port: int
    workers: int
    reset: tuple[Path, ...] = ()  # files removed before every start (fresh database)

    def fresh(self) -> None:
        for path in self.reset:
            path.unlink(missing_ok=True)


def prepare_peer(peer_dir: Path | None, work: Path) -> Path:
    """An installed copy of the Backstage peer: ``peer_dir`` as given, else a copy of the
    shared peer in ``work/peer`` on which ``install.sh`` is run (skipped once installed)."""
    if peer_dir is not None:
        if not (peer_dir / "node_modules").is_dir():
            raise SystemExit(f"{peer_dir}: no node_modules; run its install.sh first")
        return peer_dir
    peer = work / "peer"
    installed = peer / ".bench-installed"  # written once install.sh has succeeded
    if not installed.exists():
        shutil.rmtree(peer, ignore_errors=True)
        shutil.copytree(SHARED_PEER, peer)
        for path in [peer, *peer.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)  # the shared copy is read-only
        print(f"installing the peer in {peer} (npm ci, ~1.5 min)", flush=True)
        subprocess.run(["./install.sh"], cwd=peer, check=True)
        installed.touch()
    return peer


def idp_command(peer: Path, ports: Ports) -> tuple[list[str], dict[str, str]]:
    return ["node", "idp.mjs"], {**os.environ, "IDP_PORT": str(ports.idp)}


def _metadata_url(idp_port: int) -> str:
    return f"http://localhost:{idp_port}/.well-known/openid-configuration"


def backstage_spec(peer: Path, work: Path, ports: Ports) -> ServerSpec:
    """``node index.js`` as the peer's start.sh runs it; only the ports differ (overlay)."""
    overlay = {
        "backend": {
            "baseUrl": f"http://localhost:{ports.backstage}",
            "listen": {"host": "127.0.0.1", "port": ports.backstage},
        },
        "auth": {"providers": {"oidc": {"development": {"metadataUrl": _metadata_url(ports.idp)}}}},
    }
    overlay_path = work / "backstage-ports.yaml"
    overlay_path.write_text(yaml.safe_dump(overlay))
    cmd = ("node", "index.js", "--config", "app-config.yaml", "--config", str(overlay_path))
    env = {**os.environ, "NODE_ENV": "production", "PEER_CATALOG": "memory"}
    return ServerSpec("backstage", "Backstage (1 Node process)", cmd, peer, env, ports.backstage, 1)


def our_config(peer: Path, idp_port: int, port: int, database: Any) -> dict[str, Any]:
    """The peer's app-config.yaml with our own port and refreshGracePeriod 0s (every
    /refresh really goes upstream; racing requests still share one in-flight call)."""
    config: dict[str, Any] = yaml.safe_load((peer / "app-config.yaml").read_text())
    config["backend"]["baseUrl"] = f"http://localhost:{port}"
    config["backend"]["listen"] = {"host": "127.0.0.1", "port": port}
    config["backend"]["database"] = database
    config["auth"]["session"]["refreshGracePeriod"] = "0s"
    config["auth"]["providers"]["oidc"]["development"]["metadataUrl"] = _metadata_url(idp_port)
    return config


def shipped_venv(work: Path) -> Path:
    """The ``bin`` of a virtualenv with this checkout installed as the Dockerfile installs
    it: built as a wheel, with its runtime dependencies only. (The development venv adds the
    test extras, some of which the app's libraries import when present, e.g. httpx's
    command line, and an editable-install import hook: ~0.07 s of every start.) Made once,
    then the project is reinstalled from the checkout on every run."""
    venv = work / "venv-shipped"
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    if not (venv / "bin" / "python").exists():
        print(f"creating {venv} (pip install of this checkout, ~1 min)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([*pip, str(ROOT)], check=True)  # new dependencies, if any
    subprocess.run([*pip, "--no-deps", "--force-reinstall", str(ROOT)], check=True)
    return venv / "bin"


def has_workers_flag(venv_bin: Path) -> bool:
    out = subprocess.run(
        [str(venv_bin / "auth-backend"), "serve", "--help"], capture_output=True, text=True
    ).stdout
    return "--workers" in out


def our_spec(
    peer: Path,
    work: Path,
    ports: Ports,
    workers: int,
    *,
    file_db: bool = False,
    venv_bin: Path = VENV_BIN,
) -> ServerSpec:
    """One worker: ``auth-backend serve`` with the peer's in-memory SQLite. N workers: the
    processes must share keys, so the database is a SQLite file (removed before each start);
    ``file_db`` gives one worker that file too (to tell the database from the workers).
    ``venv_bin``: where ``auth-backend`` is installed (default: this interpreter's venv)."""
    name = f"ours-{workers}w" + ("-file" if file_db and workers == 1 else "")
    port = ports.ours + (0 if workers == 1 else 1) + (2 if file_db and workers == 1 else 0)
    reset: tuple[Path, ...] = ()
    database: dict[str, Any] = {"client": "better-sqlite3", "connection": ":memory:"}
    if workers > 1 or file_db:
        db_file = work / f"{name}.sqlite"
        database = {"client": "better-sqlite3", "connection": str(db_file)}
        reset = (db_file, Path(f"{db_file}-wal"), Path(f"{db_file}-shm"))
    config_path = work / f"{name}.yaml"
    config_path.write_text(yaml.safe_dump(our_config(peer, ports.idp, port, database)))
    data_dir = work / f"{name}-data"
    common = ("--config", str(config_path), "--data-dir", str(data_dir))
    if workers == 1:
        cmd: tuple[str, ...] = (str(venv_bin / "auth-backend"), "serve", *common)
        how = "auth-backend serve"
    elif has_workers_flag(venv_bin):
        cmd = (str(venv_bin / "auth-backend"), "serve", "--workers", str(workers), *common)
        how = f"auth-backend serve --workers {workers}"
    else:
        cmd = (sys.executable, str(BENCH / "workers.py"), "--workers", str(workers), *common)
        how = f"bench/workers.py --workers {workers} (uvicorn workers)"
    # As installed (pip compiles every module): bytecode is written once and reused, even
    # where the shell sets PYTHONDONTWRITEBYTECODE.
    env = {k: v for k, v in os.environ.items() if k not in ("NODE_ENV", "PYTHONDONTWRITEBYTECODE")}
    env["NODE_ENV"] = "production"
    label = f"ours, {workers} worker{'s' if workers > 1 else ''} ({how})"
    return ServerSpec(name, label, cmd, ROOT, env, port, workers, reset)
