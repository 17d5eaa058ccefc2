"""``backend.database`` -> SQLAlchemy URL, as Backstage's connectors resolve the auth
plugin's database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from app.config.validation import ConfigError
from app.db.engine import (
    create_database_engine,
    database_target_from_backstage,
    database_url_from_backstage,
    is_memory_sqlite,
)

DATA = Path("/var/lib/auth")


def url(config: Any) -> str:
    return database_url_from_backstage(config, data_dir=DATA)


def test_absent_is_a_sqlite_file_in_the_data_dir() -> None:
    assert url(None) == "sqlite+aiosqlite:////var/lib/auth/auth.sqlite"


@pytest.mark.parametrize("client", ["better-sqlite3", "sqlite3"])
def test_sqlite_memory(client: str) -> None:
    for connection in (":memory:", {"filename": ":memory:"}):
        assert url({"client": client, "connection": connection}) == ("sqlite+aiosqlite:///:memory:")


def test_sqlite_file_path_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "db" / "auth.db"
    assert url({"client": "better-sqlite3", "connection": str(file)}) == (
        f"sqlite+aiosqlite:///{file}"
    )
    assert url({"client": "sqlite3", "connection": {"filename": str(file)}}) == (
        f"sqlite+aiosqlite:///{file}"
    )
    # Backstage: a directory holds one <pluginId>.sqlite per plugin.
    assert url({"client": "better-sqlite3", "connection": {"directory": str(tmp_path)}}) == (
        f"sqlite+aiosqlite:///{tmp_path / 'auth.sqlite'}"
    )
    # Relative paths are relative to the working directory, made absolute now.
    monkeypatch.chdir(tmp_path)
    assert url({"client": "better-sqlite3", "connection": "rel/auth.db"}) == (
        f"sqlite+aiosqlite:///{tmp_path / 'rel' / 'auth.db'}"
    )


def test_plugin_connection_overrides_the_base_one(tmp_path: Path) -> None:
    config = {
        "client": "better-sqlite3",
        "connection": ":memory:",
        "plugin": {"auth": {"connection": {"filename": str(tmp_path / "a.sqlite")}}},
    }
    assert url(config) == f"sqlite+aiosqlite:///{tmp_path / 'a.sqlite'}"


def test_pg_object_connection_is_quoted() -> None:
    config = {
        "client": "pg",
        "connection": {
            "host": "db.internal",
            "port": 5433,
            "user": "back stage",
            "password": "p@ss:w/rd%",
            # Ignored: each plugin has its own database (pluginDivisionMode: database).
            "database": "backstage",
        },
    }
    result = make_url(url(config))
    assert result.drivername == "postgresql+psycopg"
    assert (result.host, result.port) == ("db.internal", 5433)
    assert (result.username, result.password) == ("back stage", "p@ss:w/rd%")
    assert result.database == "backstage_plugin_auth"
    assert result.query == {"application_name": "backstage_plugin_auth"}


def test_pg_port_may_be_a_string_from_the_environment() -> None:
    config = {"client": "pg", "connection": {"host": "h", "port": "5432", "user": "u"}}
    assert make_url(url(config)).port == 5432


def test_pg_connection_string() -> None:
    config = {
        "client": "pg",
        "connection": "postgresql://u:p%40ss@db:6543/ignored?sslmode=require",
    }
    result = make_url(url(config))
    assert (result.host, result.port, result.username, result.password) == (
        "db",
        6543,
        "u",
        "p@ss",
    )
    assert result.database == "backstage_plugin_auth"
    assert result.query["sslmode"] == "require"


def test_pg_database_name_prefix_and_plugin_database() -> None:
    base = {"client": "pg", "connection": {"host": "h", "user": "u"}}
    assert make_url(url({**base, "prefix": "bs_"})).database == "bs_auth"
    config = {**base, "plugin": {"auth": {"connection": {"database": "auth_db"}}}}
    assert make_url(url(config)).database == "auth_db"


def test_pg_unix_socket_host_goes_to_the_query() -> None:
    config = {"client": "pg", "connection": {"host": "/run/postgresql", "user": "u"}}
    result = make_url(url(config))
    assert result.host is None
    assert result.query["host"] == "/run/postgresql"
    engine = create_database_engine(url(config))
    assert engine.dialect.name == "postgresql"


@pytest.mark.parametrize(
    ("ssl", "expected"),
    [
        (True, {"sslmode": "verify-full", "sslrootcert": "system"}),
        (False, {"sslmode": "disable"}),
        ({"rejectUnauthorized": False}, {"sslmode": "require"}),
    ],
)
def test_pg_ssl(ssl: Any, expected: dict[str, str]) -> None:
    config = {"client": "pg", "connection": {"host": "h", "ssl": ssl}}
    query = make_url(url(config)).query
    assert {k: query[k] for k in expected} == expected


def test_pg_connection_string_ssl_extras() -> None:
    query = make_url(url({"client": "pg", "connection": "postgres://h/db?ssl=true"})).query
    assert query["sslmode"] == "verify-full"
    query = make_url(url({"client": "pg", "connection": "postgres://h/db?sslmode=no-verify"})).query
    assert query["sslmode"] == "require"


def test_ensure_exists() -> None:
    config: dict[str, Any] = {"client": "pg", "connection": {"host": "h"}}
    assert database_target_from_backstage(config, data_dir=DATA).ensure_exists
    config["ensureExists"] = False
    assert not database_target_from_backstage(config, data_dir=DATA).ensure_exists
    config["plugin"] = {"auth": {"ensureExists": True}}
    assert database_target_from_backstage(config, data_dir=DATA).ensure_exists


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ("sqlite", "backend.database:"),
        ({"connection": ":memory:"}, "backend.database.client:"),
        ({"client": "mysql2", "connection": {}}, "backend.database.client:"),
        ({"client": ["pg"]}, "backend.database.client:"),
        ({"client": "pg", "plugin": {"auth": {"client": "oracle"}}}, "plugin.auth.client:"),
        ({"client": "pg", "connection": {"port": "x"}}, "backend.database.connection.port:"),
        ({"client": "pg", "connection": {"host": ["a"]}}, "backend.database.connection.host:"),
        ({"client": "pg", "connection": "postgres://h:notaport/db"}, ".connection:"),
        ({"client": "pg", "connection": 5}, "backend.database.connection:"),
        ({"client": "pg", "connection": {"type": "cloudsql"}}, ".connection.type:"),
        ({"client": "pg", "connection": {"ssl": {"ca": "PEM"}}}, ".connection.ssl:"),
        ({"client": "pg", "pluginDivisionMode": "schema"}, ".pluginDivisionMode:"),
        ({"client": "pg", "prefix": 3}, "backend.database.prefix:"),
        ({"client": "pg", "ensureExists": "maybe"}, "backend.database.ensureExists:"),
        ({"client": "sqlite3", "connection": {"filename": 3}}, ".connection.filename:"),
        ({"client": "sqlite3", "plugin": []}, "backend.database.plugin:"),
    ],
)
def test_invalid_config_names_the_key(config: Any, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as info:
        url(config)
    assert str(info.value).startswith("backend.database")


def test_invalid_connection_string_does_not_echo_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        url({"client": "pg", "connection": "postgres://u:s3cret@h/db?nosuchparam=1"})
    assert "s3cret" not in str(info.value)


def test_engine_kinds() -> None:
    assert is_memory_sqlite("sqlite+aiosqlite:///:memory:")
    assert not is_memory_sqlite("sqlite+aiosqlite:////tmp/x.sqlite")
    with pytest.raises(ValueError, match="unsupported"):
        create_database_engine("mysql+aiomysql://h/db")
