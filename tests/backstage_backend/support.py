"""The split set-up an operator runs: the rest of a Backstage backend from npm
(``tests/backstage_auth/main_backend.js``: the catalog with a file location and the MCP
actions backend, no auth plugin) and our server as the ``auth`` plugin, both on ONE
``app-config.yaml`` of Backstage's keys only. Each finds the other through
``discovery.endpoints``; plugin tokens go both ways."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import yaml

from tests.backstage_auth.support import BackstageNode
from tests.support.cli_grant import cli_grant
from tests.support.oidc_provider import (
    OpenIDProvider,
    backstage_client,
    frame_callback,
    free_port,
    popup_sign_in,
    start_openid_provider,
)
from tests.support.popup import popup_message
from tests.support.server import AuthServer

APP_ORIGIN = "http://localhost:3000"
ALICE = "user:default/alice"
TEAM = "group:default/team-a"
CLI = "cli"
CLI_CALLBACK = "http://127.0.0.1:8055/callback"
# Only the tests use it, to see when the catalog has ingested its file (Backstage's
# backend.auth.externalAccess; the catalog accepts it).
WATCH_TOKEN = "catalog-watch-token-0123456789"
SECRET = "split-set-up-session-secret-of-32-characters"

USERS: list[dict[str, Any]] = [
    {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "User",
        "metadata": {"name": "alice"},
        "spec": {"profile": {"email": "alice@example.com"}, "memberOf": ["team-a"]},
    },
    {
        # Removed from the catalog by a test.
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "User",
        "metadata": {"name": "bob"},
        "spec": {"profile": {"email": "bob@example.com"}, "memberOf": []},
    },
    {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Group",
        "metadata": {"name": "team-a"},
        "spec": {"type": "team", "children": []},
    },
]


class MainBackend(BackstageNode):
    """The Backstage backend without the auth plugin, on the shared config."""

    script = "main_backend.js"

    def requests_to(self, fragment: str) -> list[str]:
        """The access-log lines of requests whose line holds ``fragment``."""
        return [
            line for line in self.output.splitlines() if "HTTP/1.1" in line and fragment in line
        ]


def shared_config(
    main_port: int,
    our_port: int,
    users_file: Path,
    op: OpenIDProvider | None,
    extra_plugins: dict[str, str] | None = None,
    **auth: Any,
) -> dict[str, Any]:
    """ONE app-config.yaml for both, with Backstage's keys only. ``extra_plugins``:
    plugin id -> URL pattern of plugins deployed elsewhere."""
    config: dict[str, Any] = {
        "app": {"baseUrl": APP_ORIGIN},
        "backend": {
            # The main backend: the default for every plugin discovery does not name.
            "baseUrl": f"http://localhost:{main_port}",
            "listen": {"host": "127.0.0.1", "port": main_port},
            "database": {"client": "better-sqlite3", "connection": ":memory:"},
            "auth": {
                "externalAccess": [
                    {"type": "static", "options": {"token": WATCH_TOKEN, "subject": "tests"}}
                ]
            },
            # The MCP actions backend lists and invokes the auth plugin's actions.
            "actions": {"pluginSources": ["auth"]},
        },
        # The auth plugin is our server: plugins call it at the internal URL, browsers
        # and tokens (iss) name the external one.
        "discovery": {
            "endpoints": [
                {
                    "target": {
                        "internal": f"http://127.0.0.1:{our_port}/api/{{{{pluginId}}}}",
                        "external": f"http://localhost:{our_port}/api/{{{{pluginId}}}}",
                    },
                    "plugins": ["auth"],
                }
            ]
        },
        "catalog": {
            "orphanStrategy": "delete",
            "processingInterval": {"seconds": 1},
            "locations": [
                {
                    "type": "file",
                    "target": str(users_file),
                    "rules": [{"allow": ["User", "Group"]}],
                }
            ],
        },
        "auth": {
            "session": {"secret": SECRET},
            "providers": {
                "guest": {"userEntityRef": ALICE, "dangerouslyAllowOutsideDevelopment": True},
            },
            "staticClients": [{"clientId": CLI, "redirectUris": [CLI_CALLBACK]}],
            "experimentalRefreshToken": {"enabled": True},
        },
    }
    if op is not None:
        # A user the catalog lacks still signs in: the refresh tokens' catalog presence
        # check must stop them.
        config["auth"]["providers"]["oidc"] = {"development": op.environment()}
    for plugin_id, target in (extra_plugins or {}).items():
        config["discovery"]["endpoints"].append({"target": target, "plugins": [plugin_id]})
    config["auth"].update(copy.deepcopy(auth))
    return config


@dataclass
class Split:
    main: MainBackend
    ours: AuthServer
    op: OpenIDProvider | None
    config: dict[str, Any]
    config_path: Path
    users_file: Path

    @property
    def auth_api(self) -> str:
        return f"{self.ours.base_url}/api/auth"


def catalog_entity(main: MainBackend, kind: str, name: str) -> httpx2.Response:
    return httpx2.get(
        f"{main.base_url}/api/catalog/entities/by-name/{kind}/default/{name}",
        headers={"Authorization": f"Bearer {WATCH_TOKEN}"},
        timeout=5,
    )


def wait_for_catalog(main: MainBackend, timeout: float = 60.0) -> None:
    """Until the catalog serves alice with her group membership stitched."""
    url = f"{main.base_url}/api/catalog/entities/by-name/user/default/alice"
    headers = {"Authorization": f"Bearer {WATCH_TOKEN}"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx2.get(url, headers=headers, timeout=5)
        if response.status_code == 200 and any(
            r.get("targetRef") == TEAM for r in response.json().get("relations", [])
        ):
            return
        time.sleep(0.3)
    raise TimeoutError(f"the catalog did not ingest {ALICE}:\n{main.output[-4000:]}")


@contextmanager
def split_set_up(
    workdir: Path,
    extra_plugins: dict[str, str] | None = None,
    our_env: dict[str, str] | None = None,
    with_oidc: bool = True,
    **auth: Any,
) -> Iterator[Split]:
    """Both servers on one config file, started together; yields once the catalog holds
    the test users. ``auth``: keys added to the shared ``auth`` section. ``with_oidc``:
    the real OpenID provider as a second sign-in (the MCP client's venv cannot run our
    OAuth providers: Authlib switches to httpx2 there)."""
    main_port, our_port = free_port(), free_port()
    users_file = workdir / "users.yaml"
    users_file.write_text(yaml.safe_dump_all(USERS))
    op = (
        start_openid_provider(
            clients=[backstage_client(frame_callback(f"http://localhost:{our_port}"))]
        )
        if with_oidc
        else None
    )
    config = shared_config(main_port, our_port, users_file, op, extra_plugins, **auth)
    (workdir / "main").mkdir()
    (workdir / "ours").mkdir()
    main = MainBackend(config, workdir / "main", port=main_port)
    # Listening on --port, where discovery sends auth.
    ours = AuthServer(config, workdir / "ours", port=our_port, env=our_env)
    # One file for both, as the operator has it.
    config_path = workdir / "app-config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    main.config_path = ours.config_path = config_path
    try:
        main.launch()
        ours.launch()
        ours.wait_ready(60)
        main.wait_ready(120)
        wait_for_catalog(main)
        yield Split(main, ours, op, config, config_path, users_file)
    finally:
        ours.stop()
        main.stop()
        if op is not None:
            op.stop()


def oidc_sign_in(split: Split, login: str) -> dict[str, Any]:
    """The popup flow at our server through the real OpenID provider; the popup's message."""
    with httpx2.Client(follow_redirects=False, timeout=30.0, trust_env=False) as browser:
        page = popup_sign_in(browser, split.auth_api, login=login, origin=APP_ORIGIN)
        assert page.status_code == 200, page.text
        return popup_message(page.text)


def guest_token(split: Split) -> str:
    response = httpx2.get(f"{split.auth_api}/guest/refresh", timeout=30)
    assert response.status_code == 200, response.text
    return str(response.json()["backstageIdentity"]["token"])


def cli_refresh_token(split: Split, user_token: str) -> str:
    """A CLI client's grant: authorize, approve as the user, exchange the code."""
    return str(cli_grant(split.auth_api, user_token, CLI, CLI_CALLBACK)["refresh_token"])


def refresh(split: Split, token: str) -> httpx2.Response:
    return httpx2.post(
        f"{split.auth_api}/v1/token",
        data={"grant_type": "refresh_token", "refresh_token": token, "client_id": CLI},
        timeout=30,
    )
