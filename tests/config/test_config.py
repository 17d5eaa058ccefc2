"""app.config: loading, merging, substitution and validation of app-config.yaml."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from app.config.loader import deep_merge, load_config
from app.config.settings import read_settings
from app.config.validation import ConfigError

MINIMAL = """\
app:
  baseUrl: http://localhost:3000
backend:
  baseUrl: http://localhost:7007
"""
BASE: dict[str, Any] = {
    "app": {"baseUrl": "http://localhost:3000"},
    "backend": {"baseUrl": "http://localhost:7007"},
}


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text)
    return path


def load(tmp_path: Path, *texts: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    paths = [write(tmp_path, f"app-config-{i}.yaml", t) for i, t in enumerate(texts)]
    return load_config(paths, env or {})


def settings_with(**overrides: Any) -> Any:
    return read_settings(deep_merge(BASE, overrides))


# -- merging -------------------------------------------------------------------------------


def test_later_files_override_scalars_merge_objects_and_replace_lists(tmp_path: Path) -> None:
    first = (
        MINIMAL
        + """\
auth:
  environment: development
  experimentalExtraAllowedOrigins: ["https://a.example.com", "https://b.example.com"]
  providers:
    github:
      development: {clientId: dev-id, clientSecret: dev-secret}
"""
    )
    second = """\
app:
  baseUrl: https://backstage.example.com
auth:
  environment: production
  experimentalExtraAllowedOrigins: ["https://c.example.com"]
  providers:
    github:
      production: {clientId: prod-id}
    guest: {}
"""
    raw = load(tmp_path, first, second)
    assert raw["app"] == {"baseUrl": "https://backstage.example.com"}
    assert raw["backend"] == {"baseUrl": "http://localhost:7007"}
    assert raw["auth"]["environment"] == "production"
    assert raw["auth"]["experimentalExtraAllowedOrigins"] == ["https://c.example.com"]
    assert raw["auth"]["providers"] == {
        "github": {
            "development": {"clientId": "dev-id", "clientSecret": "dev-secret"},
            "production": {"clientId": "prod-id"},
        },
        "guest": {},
    }
    s = read_settings(raw)
    assert s.app_base_url == "https://backstage.example.com"
    assert s.auth_environment == "production"
    assert s.extra_allowed_origins == ("https://c.example.com",)


def test_deep_merge_does_not_mutate_inputs() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}}
    override = {"a": {"c": [3]}, "d": 4}
    assert deep_merge(base, override) == {"a": {"b": 1, "c": [3]}, "d": 4}
    assert base == {"a": {"b": 1, "c": [1, 2]}}


def test_a_scalar_can_replace_an_object_and_back() -> None:
    assert deep_merge({"a": {"b": 1}}, {"a": "x"}) == {"a": "x"}
    assert deep_merge({"a": "x"}, {"a": {"b": 1}}) == {"a": {"b": 1}}


def test_empty_file_is_an_empty_config(tmp_path: Path) -> None:
    assert load(tmp_path, MINIMAL, "") == BASE


# -- substitution ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "env", "expected"),
    [
        ("${SECRET}", {"SECRET": "s3cr3t"}, "s3cr3t"),
        ("https://${HOST}:${PORT}/x", {"HOST": "h", "PORT": "1"}, "https://h:1/x"),
        ("${EMPTY}", {"EMPTY": ""}, ""),
        ("$${SECRET}", {"SECRET": "s"}, "${SECRET}"),  # escape
        ("a$${X}b${X}", {"X": "1"}, "a${X}b1"),
        ("pa$sword", {}, "pa$sword"),  # bare $x left alone
        ("$x $$x $ $$", {"x": "no"}, "$x $$x $ $$"),
        ("${unterminated", {}, "${unterminated"),
        ("${}", {}, "${}"),
        ("no vars", {}, "no vars"),
    ],
)
def test_env_substitution_in_strings(
    tmp_path: Path, template: str, env: dict[str, str], expected: str
) -> None:
    raw = load(tmp_path, MINIMAL + f"auth:\n  session:\n    secret: '{template}'\n", env=env)
    assert raw["auth"]["session"]["secret"] == expected


def test_missing_variable_drops_the_key(tmp_path: Path) -> None:
    raw = load(
        tmp_path,
        MINIMAL + "auth:\n  session:\n    secret: 'x-${MISSING}'\n  environment: e\n",
    )
    assert raw["auth"] == {"session": {}, "environment": "e"}


def test_missing_variable_in_a_list_drops_the_item(tmp_path: Path) -> None:
    text = MINIMAL + "auth:\n  experimentalExtraAllowedOrigins: ['${A}', '${MISSING}', 'x']\n"
    raw = load(tmp_path, text, env={"A": "https://a.example.com"})
    assert raw["auth"]["experimentalExtraAllowedOrigins"] == ["https://a.example.com", "x"]


def test_missing_variable_then_validation_names_the_key(tmp_path: Path) -> None:
    raw = load(tmp_path, "app:\n  baseUrl: ${APP_URL}\nbackend:\n  baseUrl: ${BACKEND_URL}\n")
    assert raw == {"app": {}, "backend": {}}
    with pytest.raises(ConfigError) as info:
        read_settings(raw)
    assert "app.baseUrl" in str(info.value)
    assert "backend.baseUrl" in str(info.value)


def test_missing_variable_in_a_later_file_keeps_the_earlier_value(tmp_path: Path) -> None:
    raw = load(tmp_path, MINIMAL, "app:\n  baseUrl: ${MISSING}\n")
    assert raw["app"]["baseUrl"] == "http://localhost:3000"


def test_dollar_env_and_dollar_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    write(tmp_path / "secrets", "session", "from-file")
    text = (
        MINIMAL
        + """\
auth:
  session:
    secret: {$file: secrets/session}
  providers:
    github:
      development:
        clientId: {$env: GITHUB_ID}
        clientSecret: {$env: MISSING}
"""
    )
    raw = load(tmp_path, text, env={"GITHUB_ID": "the-id"})
    assert raw["auth"]["session"]["secret"] == "from-file"
    assert raw["auth"]["providers"]["github"]["development"] == {"clientId": "the-id"}
    assert read_settings(raw).session_secret == "from-file"


def test_dollar_file_missing_names_the_key(tmp_path: Path) -> None:
    text = MINIMAL + "auth:\n  session:\n    secret: {$file: nope.txt}\n"
    with pytest.raises(ConfigError, match=r"^auth\.session\.secret: cannot read \$file"):
        load(tmp_path, text)


def test_objects_with_more_keys_than_dollar_env_are_plain(tmp_path: Path) -> None:
    raw = load(tmp_path, MINIMAL + "x:\n  $env: A\n  other: 1\n", env={"A": "a"})
    assert raw["x"] == {"$env": "A", "other": 1}


# -- APP_CONFIG_ overrides ---------------------------------------------------------------------


def test_app_config_env_overrides(tmp_path: Path) -> None:
    env = {
        "APP_CONFIG_backend_listen_port": "7008",
        "APP_CONFIG_app_baseUrl": "https://override.example.com",
        "APP_CONFIG_auth_experimentalExtraAllowedOrigins": '["https://*.example.com"]',
        "APP_CONFIG_auth_providers": '{"guest": {}}',
        "APP_CONFIG_auth_omitIdentityTokenOwnershipClaim": "false",
        "NOT_APP_CONFIG_app_baseUrl": "http://ignored",
        "app_config_app_baseUrl": "http://ignored",
    }
    raw = load(tmp_path, MINIMAL + "auth:\n  providers:\n    github: {}\n", env=env)
    assert raw["backend"] == {"baseUrl": "http://localhost:7007", "listen": {"port": 7008}}
    assert raw["auth"]["providers"] == {"github": {}, "guest": {}}
    s = read_settings(raw)
    assert s.listen_port == 7008
    assert s.app_base_url == "https://override.example.com"
    assert s.extra_allowed_origins == ("https://*.example.com",)
    assert s.omit_ownership_claim is False


def test_app_config_override_wins_over_substituted_values(tmp_path: Path) -> None:
    env = {"URL": "http://from-var", "APP_CONFIG_app_baseUrl": "http://from-override"}
    raw = load(tmp_path, "app:\n  baseUrl: ${URL}\nbackend:\n  baseUrl: http://b\n", env=env)
    assert raw["app"]["baseUrl"] == "http://from-override"


# -- validation -------------------------------------------------------------------------------


def test_minimal_config_defaults(tmp_path: Path) -> None:
    s = read_settings(load(tmp_path, MINIMAL))
    assert s.app_base_url == "http://localhost:3000"
    assert s.backend_base_url == "http://localhost:7007"
    assert s.auth_base_url == "http://localhost:7007/api/auth"
    assert s.listen_port == 7007
    assert s.auth_environment == "development"
    assert s.session_secret is None
    assert s.providers == {}
    assert s.extra_allowed_origins == ()
    assert s.token_expiration_seconds == 3600


def test_embedded_default_config_is_valid() -> None:
    default = Path(__file__).resolve().parents[2] / "app" / "default-config.yaml"
    s = read_settings(load_config([default], {}))
    assert s.listen_host == "127.0.0.1"
    assert "guest" in s.providers


def test_unknown_keys_are_ignored_and_kept_raw(tmp_path: Path) -> None:
    text = """\
catalog:
  rules: [{allow: [User]}]
techdocs: {builder: local}
backend:
  cors: {origin: http://localhost:3000, credentials: true}
  database: {client: better-sqlite3}
auth:
  somethingNew: true
"""
    raw = load(tmp_path, MINIMAL, text)
    s = read_settings(raw)
    assert s.backend_base_url == "http://localhost:7007"
    assert s.raw["catalog"] == {"rules": [{"allow": ["User"]}]}
    assert s.raw["backend"]["cors"]["credentials"] is True


def test_trailing_slashes_are_stripped() -> None:
    s = settings_with(app={"baseUrl": "http://localhost:3000/"}, backend={"baseUrl": "http://b/x/"})
    assert s.app_base_url == "http://localhost:3000"
    assert s.backend_base_url == "http://b/x"
    assert s.auth_base_url == "http://b/x/api/auth"


@pytest.mark.parametrize(
    ("raw", "fragments"),
    [
        ({}, ["app.baseUrl: Field required", "backend.baseUrl: Field required"]),
        ({"app": {}, "backend": {"baseUrl": "http://b"}}, ["app.baseUrl: Field required"]),
        (
            {"app": {"baseUrl": "nope"}, "backend": {"baseUrl": "ftp://x"}},
            [
                "app.baseUrl: 'nope' is not an absolute http(s) URL",
                "backend.baseUrl: 'ftp://x' is not an absolute http(s) URL",
            ],
        ),
        (deep_merge(BASE, {"backend": {"listen": "abc"}}), ["backend.listen"]),
        (
            deep_merge(BASE, {"auth": {"backstageTokenExpiration": "forever"}}),
            ["auth.backstageTokenExpiration: invalid duration 'forever'"],
        ),
        (
            deep_merge(BASE, {"auth": {"experimentalExtraAllowedOrigins": ["*.example.com"]}}),
            ["auth.experimentalExtraAllowedOrigins"],
        ),
        (
            deep_merge(BASE, {"auth": {"providers": {"github": "oops"}}}),
            ["auth.providers: 'github' must be a mapping"],
        ),
        (deep_merge(BASE, {"auth": {"session": {"secret": ""}}}), ["auth.session.secret"]),
        (deep_merge(BASE, {"auth": {"environment": 5}}), ["auth.environment"]),
    ],
)
def test_invalid_config_names_the_key_path(raw: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        read_settings(raw)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_invalid_listen_port_names_the_real_key_path() -> None:
    with pytest.raises(ConfigError) as info:
        settings_with(backend={"listen": {"port": 99999}})
    assert str(info.value).startswith("backend.listen.port: ")
    assert "_Listen" not in str(info.value)
    assert "backend.listen.str" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("app: [unclosed\n", "is not valid YAML"),
        ("- a\n- b\n", "the top level must be a mapping"),
    ],
)
def test_unusable_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(tmp_path, text)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config([tmp_path / "nope.yaml"], {})


# -- backstageTokenExpiration ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, 3600),
        ({"minutes": 5}, 600),  # clamped up to 10 minutes
        ({"minutes": 10}, 600),
        ({"minutes": 15}, 900),
        ({"hours": 2}, 7200),
        ({"hours": 24}, 86400),
        ({"days": 2}, 86400),  # clamped down to 24 hours
        ("PT15M", 900),
        ("30s", 600),
        ("1d", 86400),
        ("25h", 86400),
        ("90 minutes", 5400),
    ],
)
def test_backstage_token_expiration(value: Any, seconds: int) -> None:
    auth = {} if value is None else {"backstageTokenExpiration": value}
    s = settings_with(auth=auth)
    assert s.token_expiration_seconds == seconds
    assert isinstance(s.token_expiration_seconds, int)


# -- listen -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        (None, "", 7007),
        (":7007", "", 7007),
        (":7008", "", 7008),
        ("0.0.0.0:7008", "0.0.0.0", 7008),
        ("7009", "", 7009),
        ({"port": 8080}, "", 8080),
        ({"host": "127.0.0.1", "port": 7007}, "127.0.0.1", 7007),
        ({"host": "::"}, "::", 7007),
    ],
)
def test_listen(listen: Any, host: str, port: int) -> None:
    backend = {} if listen is None else {"listen": listen}
    s = settings_with(backend=backend)
    assert (s.listen_host, s.listen_port) == (host, port)


def test_listen_string_form_from_yaml(tmp_path: Path) -> None:
    raw = load(tmp_path, MINIMAL, "backend:\n  listen: ':7010'\n")
    assert read_settings(raw).listen_port == 7010
