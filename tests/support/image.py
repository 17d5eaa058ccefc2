"""Runs the server from the built image (``make image``) with buildah, as an operator runs it.

There is no Docker engine on the project's machines; ``buildah run --isolation chroot`` runs
the image's own command as the image's user on the host network, with the config directory
and the data directory bind-mounted where the README tells operators to mount them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Any

import httpx2
import yaml

# vfs: the storage driver scripts/build-image.sh builds into.
BUILDAH = ["buildah", "--storage-driver", os.environ.get("BUILDAH_STORAGE_DRIVER", "vfs")]
CONFIG_DIR = "/etc/auth-backend"
DATA_DIR = "/var/lib/auth-backend/data"
# The image's HEALTHCHECK and its default listen port both say 7007.
PORT = 7007
EXIT_STATUS = "container exit status: "


def buildah(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BUILDAH, *args], capture_output=True, text=True, check=check, timeout=timeout
    )


def image_config(image: str) -> dict[str, Any]:
    """The image's Docker config (User, Entrypoint, Cmd, Healthcheck, Env, ...)."""
    inspected = json.loads(buildah("inspect", "--type", "image", image).stdout)
    config: dict[str, Any] = inspected["Docker"]["config"]
    return config


class ImageServer:
    """One working container of ``image`` and the server process running in it."""

    def __init__(self, image: str, workdir: Path, config: dict[str, Any], env: dict[str, str]):
        self.image = image
        self.base_url = f"http://localhost:{PORT}"
        self.config_dir = workdir / "etc"
        self.data_dir = workdir / "data"
        self.config_dir.mkdir()
        (self.config_dir / "app-config.yaml").write_text(yaml.safe_dump(config))
        self.data_dir.mkdir()
        self.log_path = workdir / "server.log"
        self.env = env
        self.image_config = image_config(image)
        self._container: str | None = None
        # The image's user must be able to write the mounted data directory (chroot isolation
        # maps no user ids: the container's 10001 is the host's 10001).
        uid = self.run_inside("id", "-u").stdout.strip()
        os.chown(self.data_dir, int(uid), -1)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- the container ------------------------------------------------------------------

    @property
    def container(self) -> str:
        if self._container is None:
            self._container = buildah("from", "--pull-never", self.image).stdout.strip()
        return self._container

    def run_inside(
        self, *command: str, user: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` in the container (the image's user unless ``user``), unchecked."""
        options = ["--user", user] if user else []
        return buildah(
            "run",
            "--isolation",
            "chroot",
            *options,
            self.container,
            "--",
            *command,
            check=False,
            timeout=timeout,
        )

    def remove(self) -> None:
        if self._container is not None:
            buildah("rm", self._container, check=False)
            self._container = None

    # -- the server ----------------------------------------------------------------------

    def command(self) -> list[str]:
        """``docker run`` without a command: the image's ENTRYPOINT and CMD.

        A shell in front reports the server's own exit status (buildah's says 1 for anything,
        a signal included), as ``docker wait`` would; the server is not exec'd so that the
        shell outlives it."""
        environment = [f"--env={name}={value}" for name, value in self.env.items()]
        return [
            *BUILDAH,
            "run",
            "--isolation",
            "chroot",
            *environment,
            "--volume",
            f"{self.config_dir}:{CONFIG_DIR}:ro",
            "--volume",
            f"{self.data_dir}:{DATA_DIR}",
            self.container,
            "--",
            "/bin/sh",
            "-c",
            f'"$@"; echo "{EXIT_STATUS}$?" >&2',
            "sh",
            *self.image_config["Entrypoint"],
            *self.image_config["Cmd"],
        ]

    def start(self, timeout: float = 60.0) -> ImageServer:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the container exited {self._proc.returncode}:\n{self.output}")
            try:
                httpx2.get(f"{self.base_url}/.backstage/health/v1/readiness", timeout=1.0)
                return self
            except httpx2.HTTPError:
                time.sleep(0.2)
        raise TimeoutError(f"the server in the container did not start:\n{self.output}")

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def server_pid(self) -> int:
        """The container's main process (what ``docker stop`` signals): the ``auth-backend``
        process below buildah's chroot runtime."""
        assert self._proc is not None
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        pending = [self._proc.pid]
        while pending:
            pid = pending.pop()
            try:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if name == "auth-backend":
                return pid
            pending.extend(children.get(pid, []))
        raise RuntimeError(f"no auth-backend process below buildah ({self._proc.pid})")

    def terminate_server(self, timeout: float = 30.0) -> int:
        """SIGTERM to the server, as ``docker stop`` sends; returns the server's exit status
        (128 + the signal's number when a signal ended it, as the shell and Docker say)."""
        assert self._proc is not None
        os.kill(self.server_pid(), signal.SIGTERM)
        self._proc.wait(timeout=timeout)
        reported = [line for line in self.output.splitlines() if line.startswith(EXIT_STATUS)]
        assert reported, self.output
        return int(reported[-1].removeprefix(EXIT_STATUS))

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            try:
                self.terminate_server()
            except (RuntimeError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        self.remove()
