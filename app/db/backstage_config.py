"""Backstage's ``backend.database`` config, mapped to a SQLAlchemy URL for the auth plugin.

Mirrors ``@backstage/backend-defaults``' database connectors for the plugin id ``auth``:

* ``backend.database.plugin.auth.{client, connection, ensureExists}`` override the base
  keys; a plugin ``client`` that differs from the base one drops the base ``connection``.
* ``pg``: ``connection`` is a connection string or ``{host, port, user, password,
  database, ssl}``. The base ``connection.database`` is ignored (every plugin has its own
  database); the name is ``plugin.auth.connection.database``, else ``<prefix>auth`` with
  ``prefix`` defaulting to ``backstage_plugin_``. It is created when missing unless
  ``ensureExists: false``.
* ``better-sqlite3`` / ``sqlite3``: ``connection`` is ``':memory:'``, a file path, or
  ``{filename?, directory?}`` (``<directory>/auth.sqlite`` when only a directory is given).
* no ``backend.database``: the SQLite file ``<data_dir>/auth.sqlite``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy.engine import URL

from app.config.validation import ConfigError

PLUGIN_ID = "auth"
DEFAULT_PREFIX = "backstage_plugin_"
SQLITE_FILE_NAME = f"{PLUGIN_ID}.sqlite"
SQLITE_DRIVER = "sqlite+aiosqlite"
POSTGRES_DRIVER = "postgresql+psycopg"

_ROOT = "backend.database"
_PLUGIN = f"{_ROOT}.plugin.{PLUGIN_ID}"
_SQLITE_CLIENTS = frozenset({"better-sqlite3", "sqlite3"})
# knex accepts these aliases of "pg".
_PG_CLIENTS = frozenset({"pg", "postgres", "postgresql"})
_PG_LIBPQ_KEYS = {"user": "user", "password": "password", "host": "host", "port": "port"}


@dataclass(frozen=True)
class DatabaseTarget:
    """Where the auth plugin's tables live."""

    url: str
    # pg: create the database when it is missing; SQLite: create the file's directory.
    ensure_exists: bool = True


def database_url_from_backstage(
    database_config: Mapping[str, Any] | None, *, data_dir: Path
) -> str:
    """The SQLAlchemy URL (async drivers) for ``backend.database``.

    Raises:
        ConfigError: naming the ``backend.database...`` key that cannot be used.
    """
    return database_target_from_backstage(database_config, data_dir=data_dir).url


def database_target_from_backstage(
    database_config: Mapping[str, Any] | None, *, data_dir: Path
) -> DatabaseTarget:
    """Like ``database_url_from_backstage``, plus whether to create the database.

    Raises:
        ConfigError: naming the ``backend.database...`` key that cannot be used.
    """
    if database_config is None:
        return DatabaseTarget(_sqlite_url(data_dir / SQLITE_FILE_NAME))
    if not isinstance(database_config, Mapping):
        raise ConfigError(f"{_ROOT}: must be an object with 'client' and 'connection'")
    plugin = _optional_mapping(database_config.get("plugin"), f"{_ROOT}.plugin")
    plugin_config = _optional_mapping(plugin.get(PLUGIN_ID), _PLUGIN)

    base_client = _client(database_config.get("client"), f"{_ROOT}.client")
    client = base_client
    if plugin_config.get("client") is not None:
        client = _client(plugin_config["client"], f"{_PLUGIN}.client")
    overridden = client != base_client

    mode = database_config.get("pluginDivisionMode", "database")
    if mode != "database":
        raise ConfigError(f"{_ROOT}.pluginDivisionMode: only 'database' is supported, not {mode!r}")
    ensure_exists = _bool(
        plugin_config.get("ensureExists", database_config.get("ensureExists", True)),
        f"{_PLUGIN}.ensureExists" if "ensureExists" in plugin_config else f"{_ROOT}.ensureExists",
    )

    if client in _SQLITE_CLIENTS:
        base = {} if overridden else _sqlite_connection(database_config.get("connection"), _ROOT)
        own = _sqlite_connection(plugin_config.get("connection"), _PLUGIN)
        return DatabaseTarget(_sqlite_target({**base, **own}), ensure_exists)

    base = {} if overridden else _pg_connection(database_config.get("connection"), _ROOT)
    # Databases are not shared between plugins: the base database name is ignored.
    base.pop("dbname", None)
    own = _pg_connection(plugin_config.get("connection"), _PLUGIN)
    prefix = database_config.get("prefix", DEFAULT_PREFIX)
    if not isinstance(prefix, str):
        raise ConfigError(f"{_ROOT}.prefix: must be a string")
    params = {**base, **own}
    params.setdefault("dbname", f"{prefix}{PLUGIN_ID}")
    params.setdefault("application_name", f"backstage_plugin_{PLUGIN_ID}")
    return DatabaseTarget(_pg_url(params), ensure_exists)


# -- shared ----------------------------------------------------------------------------


def _optional_mapping(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: must be an object")
    return value


def _client(value: Any, path: str) -> str:
    if isinstance(value, str) and value in _PG_CLIENTS:
        return "pg"
    if isinstance(value, str) and value in _SQLITE_CLIENTS:
        return value
    if value is None:
        raise ConfigError(f"{path}: required (pg, better-sqlite3 or sqlite3)")
    raise ConfigError(
        f"{path}: unsupported database client {value!r}; use pg, better-sqlite3 or sqlite3"
    )


def _bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise ConfigError(f"{path}: must be true or false")


# -- SQLite ------------------------------------------------------------------------------


def _sqlite_connection(value: Any, path: str) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, str):
        return {"filename": value} if value else {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}.connection: must be ':memory:', a file path or an object")
    out: dict[str, str] = {}
    for key in ("filename", "directory"):
        item = value.get(key)
        if item is None:
            continue
        if not isinstance(item, str) or not item:
            raise ConfigError(f"{path}.connection.{key}: must be a non-empty string")
        out[key] = item
    return out


def _sqlite_target(connection: Mapping[str, str]) -> str:
    filename = connection.get("filename")
    if filename == ":memory:":
        return f"{SQLITE_DRIVER}:///:memory:"
    directory = Path(connection.get("directory", "."))
    return _sqlite_url(directory / (filename or SQLITE_FILE_NAME))


def _sqlite_url(file: Path) -> str:
    return f"{SQLITE_DRIVER}:///{file.expanduser().absolute()}"


# -- PostgreSQL ------------------------------------------------------------------------


def _pg_connection(value: Any, path: str) -> dict[str, str]:
    """libpq keywords (``dbname``, ``host``, ``sslmode``, ...) from either form."""
    if value is None:
        return {}
    if isinstance(value, str):
        return _parse_pg_connection_string(value, f"{path}.connection")
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}.connection: must be a connection string or an object")
    connection_type = value.get("type", "default")
    if connection_type != "default":
        raise ConfigError(
            f"{path}.connection.type: only 'default' is supported, not {connection_type!r}"
        )
    out: dict[str, str] = {}
    for key, keyword in (*_PG_LIBPQ_KEYS.items(), ("database", "dbname")):
        item = value.get(key)
        if item is None:
            continue
        if isinstance(item, bool) or not isinstance(item, str | int) or item == "":
            raise ConfigError(f"{path}.connection.{key}: must be a non-empty string")
        out[keyword] = str(item)
    if "port" in out and not out["port"].isdigit():
        raise ConfigError(f"{path}.connection.port: must be a port number")
    if isinstance(value.get("application_name"), str):
        out["application_name"] = value["application_name"]
    if "ssl" in value:
        out.update(_pg_ssl(value["ssl"], f"{path}.connection.ssl"))
    return out


def _pg_ssl(value: Any, path: str) -> dict[str, str]:
    """node-postgres' ``ssl`` option in libpq terms."""
    if value is False or value in ("false", "0"):
        return {"sslmode": "disable"}
    if value is True or value in ("true", "1"):
        # Node verifies the server certificate and host name against the system CAs.
        return {"sslmode": "verify-full", "sslrootcert": "system"}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: must be true, false or an object")
    verify = value.get("rejectUnauthorized", True) is not False
    if any(key in value for key in ("ca", "cert", "key")):
        # node-postgres takes certificate contents; libpq wants files.
        raise ConfigError(
            f"{path}: 'ca', 'cert' and 'key' are not supported here; use a connection "
            "string with sslrootcert, sslcert and sslkey file paths"
        )
    if verify:
        return {"sslmode": "verify-full", "sslrootcert": "system"}
    return {"sslmode": "require"}


def _parse_pg_connection_string(value: str, path: str) -> dict[str, str]:
    # psycopg (~60 ms, ~20 MiB) is imported only when the database is PostgreSQL.
    from psycopg import ProgrammingError as PsycopgProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    ssl: dict[str, str] = {}
    if "://" in value:
        # pg-connection-string's extras: ssl=true|false and sslmode=no-verify.
        parts = urlsplit(value)
        query = []
        for key, item in parse_qsl(parts.query, keep_blank_values=True):
            if key == "ssl":
                ssl = _pg_ssl(item, f"{path} (ssl=)")
            elif key == "sslmode" and item == "no-verify":
                ssl = {"sslmode": "require"}
            else:
                query.append((key, item))
        value = urlunsplit(parts._replace(query=urlencode(query)))
    try:
        parsed = conninfo_to_dict(value)
    except PsycopgProgrammingError as exc:
        # The message may quote the string, and the string may hold a password.
        raise ConfigError(f"{path}: not a valid PostgreSQL connection string") from exc
    out = {key: str(item) for key, item in parsed.items() if item is not None}
    if not all(port.isdigit() for port in out.get("port", "0").split(",") if port):
        raise ConfigError(f"{path}: the port must be a number")
    return {**out, **ssl}


def _pg_url(params: Mapping[str, str]) -> str:
    query = {k: v for k, v in params.items() if k not in ("user", "password", "dbname")}
    host = query.get("host")
    port = query.get("port")
    simple_host = host is not None and not host.startswith("/") and "," not in host
    simple_port = port is None or port.isdigit()
    url_host: str | None = None
    url_port: int | None = None
    if simple_host and simple_port:
        # host[:port] in the URL; sockets and host lists stay in the query.
        url_host = query.pop("host")
        url_port = int(query.pop("port")) if port is not None else None
    return URL.create(
        POSTGRES_DRIVER,
        username=params.get("user"),
        password=params.get("password"),
        host=url_host,
        port=url_port,
        database=params["dbname"],
        query=dict(sorted(query.items())),
    ).render_as_string(hide_password=False)
