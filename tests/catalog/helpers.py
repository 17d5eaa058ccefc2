"""Shared by the catalog tests: the fixture org and ways to load it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import TypeVar

from app.config.loader import load_config
from app.core.clock import Clock
from app.identity.catalog import Catalog, CatalogUser
from app.identity.catalog_config import catalog_from_config

T = TypeVar("T")

FIXTURES = Path(__file__).resolve().parent / "fixtures"
APP_CONFIG = FIXTURES / "app-config.yaml"


def run(awaitable: Awaitable[T]) -> T:
    async def wait() -> T:
        return await awaitable

    return asyncio.run(wait())


def fixture_catalog(clock: Clock) -> Catalog:
    """The catalog the fixture app-config.yaml describes, loaded as the server would."""
    raw = load_config([APP_CONFIG], os.environ)
    return catalog_from_config(raw, config_dir=APP_CONFIG.parent, clock=clock)


def users_by_ref(catalog: Catalog) -> Mapping[str, CatalogUser]:
    return {u.ref: u for u in run(catalog.find_users())}


def write(path: Path, text: str) -> Path:
    """Write and move the mtime on, so a change is seen even within one clock tick."""
    path.parent.mkdir(parents=True, exist_ok=True)
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    stamp = max(before + 1_000_000_000, path.stat().st_mtime_ns)
    os.utime(path, ns=(stamp, stamp))
    return path


def user_doc(name: str, email: str | None = None, **extra: str) -> str:
    lines = [
        "apiVersion: backstage.io/v1alpha1",
        "kind: User",
        "metadata:",
        f"  name: {name}",
        *(f"  {k}: {v}" for k, v in extra.items()),
        "spec:",
        f"  profile: {{email: '{email}'}}" if email else "  profile: {}",
    ]
    return "\n".join(lines) + "\n"
