"""``auth-backend explain-sign-in``: the configured resolvers run for a profile against the
configured catalog (a file catalog through the real CLI, a remote catalog in process),
each step printed, nothing issued; and a failed real sign-in logs the same steps."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from app.config.settings import read_settings
from app.providers.registry import REGISTRY
from app.server.explain_sign_in import explain
from tests.catalog.fake_catalog import TOKEN, FakeCatalog, user_entity
from tests.support.cli_server import run_cli, write_config

ORG = """
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: grace}
spec:
  profile: {email: grace@example.com}
  memberOf: [team-a]
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: twin1}
spec: {profile: {email: twin@example.com}}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: twin2}
spec: {profile: {email: twin@example.com}}
---
apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: team-a}
spec: {type: team, children: [], members: [grace]}
"""
RESOLVERS = [
    {"resolver": "emailMatchingUserEntityProfileEmail"},
    {"resolver": "emailLocalPartMatchingUserEntityName"},
]


def _config(catalog: dict[str, Any], auth_catalog: dict[str, Any] | None = None) -> dict[str, Any]:
    auth: dict[str, Any] = {
        "session": {"secret": "s"},
        "providers": {
            "oidc": {
                "development": {
                    "metadataUrl": "https://idp.example.com/.well-known/openid-configuration",
                    "clientId": "a",
                    "clientSecret": "b",
                    "signIn": {"resolvers": RESOLVERS},
                }
            }
        },
    }
    if auth_catalog is not None:
        auth["catalog"] = auth_catalog
    return {
        "app": {"baseUrl": "http://localhost:3000"},
        "backend": {"baseUrl": "http://localhost:7007"},
        **catalog,
        "auth": auth,
    }


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    (tmp_path / "org.yaml").write_text(ORG)
    catalog = {
        "catalog": {
            "rules": [{"allow": ["User", "Group"]}],
            "locations": [{"type": "file", "target": "./org.yaml"}],
        }
    }
    return write_config(tmp_path / "c.yaml", _config(catalog))


def _explain(config: Path, profile: dict[str, Any]) -> tuple[int, str]:
    result = run_cli(
        "explain-sign-in",
        "--config",
        str(config),
        "--provider",
        "oidc",
        "--profile",
        json.dumps(profile),
    )
    return result.returncode, result.stdout


def test_found(config_path: Path) -> None:
    code, out = _explain(config_path, {"email": "grace@example.com", "email_verified": True})
    assert code == 0
    assert out == (
        "provider oidc (environment development)\n"
        'profile: {"email": "grace@example.com"}\n'
        "1. resolver emailMatchingUserEntityProfileEmail\n"
        "   lookup email=grace@example.com: user:default/grace\n"
        "   would issue: user:default/grace (ownership: user:default/grace, "
        "group:default/team-a)\n"
        "result: signs in as user:default/grace\n"
    )


def test_not_found(config_path: Path) -> None:
    code, out = _explain(config_path, {"email": "nobody@example.com", "email_verified": True})
    assert code == 1
    assert "1. resolver emailMatchingUserEntityProfileEmail\n" in out
    assert "   stopped: not found (User not found)\n2. resolver emailLocal" in out
    assert "   lookup entityRef=user:default/nobody: not found\n" in out
    assert out.endswith(
        "result: sign-in fails: Error: Failed to sign-in, unable to resolve user identity. "
        "Please verify that your catalog contains the expected User entities that would "
        "match your configured sign-in resolver.\n"
    )


def test_several_matches(config_path: Path) -> None:
    code, out = _explain(config_path, {"email": "twin@example.com", "email_verified": True})
    assert code == 1
    assert "   lookup email=twin@example.com: several matches\n" in out
    assert "   stopped: several matches (User lookup resulted in multiple matches)\n" in out
    # Several matches end the sign-in: the next resolver is not tried (Backstage).
    assert "2. resolver" not in out


def test_unverified_email(config_path: Path) -> None:
    code, out = _explain(config_path, {"email": "grace@example.com", "email_verified": False})
    assert code == 1
    assert "profile: {}\n  email grace@example.com dropped: email_verified is false\n" in out
    assert (
        "   stopped: unverified email (Login failed, user profile does not contain an email)\n"
        in out
    )
    assert "lookup" not in out


def test_a_bad_profile_is_a_clear_error(config_path: Path) -> None:
    code, out = _explain(config_path, [])  # type: ignore[arg-type]
    assert code == 2


def _remote(fake: FakeCatalog, profile: dict[str, Any]) -> str:
    settings = read_settings(
        _config({}, {"remote": {"baseUrl": "http://catalog.internal:7007", "token": TOKEN}})
    )
    result = asyncio.run(
        explain(
            settings,
            provider_id="oidc",
            env=None,
            profile=profile,
            providers=REGISTRY,
            config_dir=Path.cwd(),
            transport=fake.transport(),
        )
    )
    return result.render()


def test_remote_catalog_found_not_found_and_several() -> None:
    fake = FakeCatalog(
        [
            user_entity("grace", email="grace@example.com", member_of=["group:default/team-a"]),
            user_entity("twin1", email="twin@example.com"),
            user_entity("twin2", email="twin@example.com"),
        ]
    )
    found = _remote(fake, {"email": "grace@example.com", "email_verified": True})
    assert "   lookup email=grace@example.com: user:default/grace\n" in found
    assert found.endswith("result: signs in as user:default/grace")
    missing = _remote(fake, {"email": "nobody@example.com", "email_verified": True})
    assert "   lookup entityRef=user:default/nobody: not found\n" in missing
    assert "result: sign-in fails: Error: Failed to sign-in" in missing
    several = _remote(fake, {"email": "twin@example.com", "email_verified": True})
    assert "stopped: several matches" in several
    unverified = _remote(fake, {"email": "grace@example.com"})  # oidc: not verified
    assert "stopped: unverified email" in unverified
    # Nothing was issued: no token anywhere in what a dry run produces.
    assert "eyJ" not in found
