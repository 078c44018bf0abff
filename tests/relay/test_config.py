"""Configuration: defaults, TOML, environment overrides and one-line errors.

Every test passes ``environ`` explicitly, so whatever ``RELAY_*`` or ``DATABASE_URL``
the developer's shell holds cannot change the outcome.
"""

from __future__ import annotations

import tomllib
import typing
from pathlib import Path
from typing import Any

import attrs
import pytest

from relay import config as config_mod
from relay.config import (
    Config,
    ConfigError,
    default_config_path,
    load,
    parse_listen,
    redacted,
)

NO_ENV: dict[str, str] = {}

#: section name -> its attrs class (field types are strings under PEP 563)
SECTIONS: dict[str, type] = typing.get_type_hints(Config)


@pytest.fixture
def write_toml(tmp_path: Path) -> Any:
    def write(text: str) -> Path:
        path = tmp_path / "relay.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def _error(write_toml: Any, toml: str | None = None, env: dict[str, str] | None = None) -> str:
    path = write_toml(toml) if toml is not None else write_toml("")
    with pytest.raises(ConfigError) as info:
        load(path, NO_ENV if env is None else env)
    message = str(info.value)
    assert "\n" not in message, "a configuration error is one line"
    return message


# ---------------------------------------------------------------- defaults and files


def test_defaults_load_from_an_empty_file(write_toml: Any) -> None:
    config = load(write_toml(""), NO_ENV)
    assert config == Config()
    assert config.database.url == ""
    assert config.smtp.listen == "0.0.0.0:587"
    assert config.smtp.trusted_networks == ("127.0.0.0/8", "::1/128")
    assert config.limits.max_command_line == 512
    assert config.logging.level == "info"


def test_toml_values_of_every_type_are_used(write_toml: Any) -> None:
    config = load(
        write_toml(
            """
            [database]
            url = "postgresql://relay@db.internal/relay"
            pool_min_size = 3
            migrate_on_start = false

            [smtp]
            listen = "127.0.0.1:2587"
            max_connections = 50
            auth_failure_delay = 0.25
            trusted_networks = ["10.0.0.0/8"]

            [worker]
            poll_interval = 2          # an integer where a float is expected

            [api]
            cors_origins = ["https://admin.example"]
            """
        ),
        NO_ENV,
    )
    assert config.database.url == "postgresql://relay@db.internal/relay"
    assert config.database.pool_min_size == 3
    assert config.database.migrate_on_start is False
    assert config.smtp.listen == "127.0.0.1:2587"
    assert config.smtp.max_connections == 50
    assert config.smtp.auth_failure_delay == 0.25
    assert config.smtp.trusted_networks == ("10.0.0.0/8",)
    assert config.worker.poll_interval == 2.0 and isinstance(config.worker.poll_interval, float)
    assert config.api.cors_origins == ("https://admin.example",)
    # keys the file does not mention keep their defaults
    assert config.smtp.max_recipients == Config().smtp.max_recipients


def test_conf_relay_toml_loads_and_equals_the_code_defaults() -> None:
    assert load(default_config_path(), NO_ENV) == Config()


def test_conf_relay_toml_documents_every_key() -> None:
    with open(default_config_path(), "rb") as f:
        documented = tomllib.load(f)
    assert set(documented) == set(SECTIONS)
    for name, cls in SECTIONS.items():
        keys = {field.name for field in attrs.fields(cls)}
        assert set(documented[name]) == keys, name


def test_load_without_a_path_uses_conf_relay_toml() -> None:
    assert load(None, NO_ENV) == load(default_config_path(), NO_ENV)


# ---------------------------------------------------------------- environment


@pytest.mark.parametrize(
    ("name", "raw", "section", "key", "expected"),
    [
        ("RELAY_SMTP__LISTEN", "127.0.0.1:2587", "smtp", "listen", "127.0.0.1:2587"),
        ("RELAY_SMTP__HOSTNAME", "mx.example", "smtp", "hostname", "mx.example"),
        ("RELAY_SMTP__MAX_CONNECTIONS", "7", "smtp", "max_connections", 7),
        ("RELAY_WORKER__POLL_INTERVAL", "0.5", "worker", "poll_interval", 0.5),
        ("RELAY_WORKER__POLL_INTERVAL", "3", "worker", "poll_interval", 3.0),
        ("RELAY_SMTP__AUTH_REQUIRE_TLS", "false", "smtp", "auth_require_tls", False),
        ("RELAY_SMTP__AUTH_REQUIRE_TLS", "0", "smtp", "auth_require_tls", False),
        ("RELAY_SMTP__AUTH_REQUIRE_TLS", "No", "smtp", "auth_require_tls", False),
        ("RELAY_SMTP__AUTH_REQUIRE_TLS", "off", "smtp", "auth_require_tls", False),
        ("RELAY_DATABASE__MIGRATE_ON_START", "TRUE", "database", "migrate_on_start", True),
        ("RELAY_DATABASE__MIGRATE_ON_START", "1", "database", "migrate_on_start", True),
        ("RELAY_DATABASE__MIGRATE_ON_START", "yes", "database", "migrate_on_start", True),
        ("RELAY_DATABASE__MIGRATE_ON_START", "on", "database", "migrate_on_start", True),
        (
            "RELAY_SMTP__TRUSTED_NETWORKS", "10.0.0.0/8, 192.168.0.0/16",
            "smtp", "trusted_networks", ("10.0.0.0/8", "192.168.0.0/16"),
        ),
        (
            "RELAY_SMTP__TRUSTED_NETWORKS", '["10.0.0.0/8", "fd00::/8"]',
            "smtp", "trusted_networks", ("10.0.0.0/8", "fd00::/8"),
        ),
        ("RELAY_SMTP__TRUSTED_NETWORKS", "", "smtp", "trusted_networks", ()),
        ("RELAY_API__CORS_ORIGINS", "[]", "api", "cors_origins", ()),
        ("RELAY_API__CORS_ORIGINS", "https://a.example", "api", "cors_origins", ("https://a.example",)),
    ],
)
def test_env_overrides_each_type(
    write_toml: Any, name: str, raw: str, section: str, key: str, expected: object
) -> None:
    config = load(write_toml(""), {name: raw})
    value = getattr(getattr(config, section), key)
    assert value == expected
    assert type(value) is type(expected)


def test_env_wins_over_the_file_and_leaves_other_keys_alone(write_toml: Any) -> None:
    path = write_toml('[smtp]\nmax_connections = 5\nhostname = "from.file"\n')
    config = load(path, {"RELAY_SMTP__MAX_CONNECTIONS": "9"})
    assert config.smtp.max_connections == 9
    assert config.smtp.hostname == "from.file"


def test_env_names_are_case_insensitive_after_the_prefix(write_toml: Any) -> None:
    assert load(write_toml(""), {"RELAY_Smtp__Max_Connections": "3"}).smtp.max_connections == 3


def test_env_without_section_separator_is_ignored(write_toml: Any) -> None:
    # RELAY_TEST_DATABASE_URL is what the test suite itself uses: not a config key.
    env = {"RELAY_TEST_DATABASE_URL": "postgresql://x/y", "RELAY_SMTP": "x", "PATH": "/bin"}
    assert load(write_toml(""), env) == Config()


def test_database_url_is_honoured(write_toml: Any) -> None:
    url = "postgresql://relay@db.internal:5433/relay"
    assert load(write_toml(""), {"DATABASE_URL": url}).database.url == url


def test_database_url_overrides_the_file(write_toml: Any) -> None:
    path = write_toml('[database]\nurl = "postgresql://file/db"\n')
    assert load(path, {"DATABASE_URL": "postgresql://env/db"}).database.url == "postgresql://env/db"


def test_relay_database_url_wins_over_database_url(write_toml: Any) -> None:
    env = {"DATABASE_URL": "postgresql://generic/db", "RELAY_DATABASE__URL": "postgresql://relay/db"}
    assert load(write_toml(""), env).database.url == "postgresql://relay/db"


def test_empty_relay_database_url_wins_over_database_url(write_toml: Any) -> None:
    env = {"DATABASE_URL": "postgresql://generic/db", "RELAY_DATABASE__URL": ""}
    assert load(write_toml(""), env).database.url == ""


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("toml", "prefix"),
    [
        ('[smtp]\nmax_connections = "ten"\n', "smtp.max_connections: "),
        ("[smtp]\nmax_connections = 1.5\n", "smtp.max_connections: "),
        ("[smtp]\nmax_connections = true\n", "smtp.max_connections: "),
        ('[smtp]\nauth_failure_delay = "slow"\n', "smtp.auth_failure_delay: "),
        ("[smtp]\nhostname = 5\n", "smtp.hostname: "),
        ('[smtp]\nauth_require_tls = "yes"\n', "smtp.auth_require_tls: "),
        ('[smtp]\ntrusted_networks = "10.0.0.0/8"\n', "smtp.trusted_networks: "),
        ("[api]\ncors_origins = [1]\n", "api.cors_origins: "),
    ],
)
def test_wrong_type_in_toml_names_the_key(write_toml: Any, toml: str, prefix: str) -> None:
    assert _error(write_toml, toml).startswith(prefix)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("RELAY_SMTP__MAX_CONNECTIONS", "ten"),
        ("RELAY_SMTP__MAX_CONNECTIONS", "1.5"),
        ("RELAY_SMTP__AUTH_FAILURE_DELAY", "slow"),
        ("RELAY_SMTP__AUTH_REQUIRE_TLS", "maybe"),
        ("RELAY_SMTP__TRUSTED_NETWORKS", "[1, 2"),
    ],
)
def test_wrong_type_in_env_names_the_variable(write_toml: Any, name: str, raw: str) -> None:
    assert _error(write_toml, env={name: raw}).startswith(f"{name}: ")


def test_json_list_of_non_strings_in_env_names_the_key(write_toml: Any) -> None:
    message = _error(write_toml, env={"RELAY_SMTP__TRUSTED_NETWORKS": "[1, 2]"})
    assert message.startswith("smtp.trusted_networks: ")


def test_unknown_key_in_toml(write_toml: Any) -> None:
    message = _error(write_toml, "[smtp]\nmax_conections = 5\n")
    assert message.startswith("smtp: ") and "max_conections" in message


def test_unknown_section_in_toml(write_toml: Any) -> None:
    message = _error(write_toml, "[smpt]\nlisten = '127.0.0.1:25'\n")
    assert "smpt" in message and "unknown section" in message


def test_section_that_is_not_a_table(write_toml: Any) -> None:
    assert _error(write_toml, 'smtp = "127.0.0.1:25"\n').startswith("smtp: ")


def test_unknown_key_in_env(write_toml: Any) -> None:
    message = _error(write_toml, env={"RELAY_SMTP__MAX_CONECTIONS": "5"})
    assert message.startswith("RELAY_SMTP__MAX_CONECTIONS: ") and "max_conections" in message


def test_unknown_section_in_env(write_toml: Any) -> None:
    message = _error(write_toml, env={"RELAY_SMPT__LISTEN": "127.0.0.1:25"})
    assert message.startswith("RELAY_SMPT__LISTEN: ") and "smpt" in message


@pytest.mark.parametrize(
    ("toml", "prefix"),
    [
        ("[smtp]\nmax_connections = -1\n", "smtp.max_connections: "),
        ("[smtp]\nmax_connections = 0\n", "smtp.max_connections: "),
        ("[smtp]\nauth_failure_delay = -0.5\n", "smtp.auth_failure_delay: "),
        ("[worker]\nbatch_size = -3\n", "worker.batch_size: "),
        ('[smtp]\nlisten = "127.0.0.1:65536"\n', "smtp.listen: "),
        ('[smtp]\nlisten = "127.0.0.1:-1"\n', "smtp.listen: "),
        ('[smtp]\nlisten = "127.0.0.1:smtp"\n', "smtp.listen: "),
        ('[smtp]\nlisten = "2587"\n', "smtp.listen: "),
        ('[api]\nlisten = "localhost:99999"\n', "api.listen: "),
        ("[database]\npool_min_size = 11\npool_max_size = 10\n", "database.pool_min_size: "),
        ('[tls]\ncert_file = "relay.crt"\n', "tls.cert_file: "),
        ('[tls]\nkey_file = "relay.key"\n', "tls.cert_file: "),
        ("[limits]\nmax_command_line = 511\n", "limits.max_command_line: "),
        ("[limits]\nmax_text_line = 999\n", "limits.max_text_line: "),
        ('[smtp]\ntrusted_networks = ["10.0.0.0/33"]\n', "smtp.trusted_networks: "),
        ('[smtp]\ntrusted_networks = ["intranet"]\n', "smtp.trusted_networks: "),
        ('[logging]\nlevel = "verbose"\n', "logging.level: "),
        ('[logging]\nformat = "xml"\n', "logging.format: "),
        ('[smtp]\nbare_line_ending_policy = "accept"\n', "smtp.bare_line_ending_policy: "),
        ('[database]\nurl = "mysql://relay@db/relay"\n', "database.url: "),
        ('[database]\nurl = "db.internal:5432"\n', "database.url: "),
    ],
)
def test_impossible_value_in_toml_names_the_key(write_toml: Any, toml: str, prefix: str) -> None:
    assert _error(write_toml, toml).startswith(prefix)


@pytest.mark.parametrize(
    ("env", "prefix"),
    [
        ({"RELAY_SMTP__MAX_CONNECTIONS": "-5"}, "smtp.max_connections: "),
        ({"RELAY_SMTP__LISTEN": "0.0.0.0:70000"}, "smtp.listen: "),
        ({"RELAY_DATABASE__POOL_MIN_SIZE": "50"}, "database.pool_min_size: "),
        ({"RELAY_TLS__KEY_FILE": "relay.key"}, "tls.cert_file: "),
        ({"RELAY_LIMITS__MAX_COMMAND_LINE": "100"}, "limits.max_command_line: "),
        ({"RELAY_SMTP__TRUSTED_NETWORKS": "10.0.0.0/8,not-a-net"}, "smtp.trusted_networks: "),
        ({"RELAY_LOGGING__LEVEL": "trace"}, "logging.level: "),
        ({"DATABASE_URL": "mysql://relay@db/relay"}, "database.url: "),
        ({"RELAY_DATABASE__URL": "sqlite:///relay.db"}, "database.url: "),
    ],
)
def test_impossible_value_in_env_names_the_key(
    write_toml: Any, env: dict[str, str], prefix: str
) -> None:
    assert _error(write_toml, env=env).startswith(prefix)


@pytest.mark.parametrize(("value", "ok"), [(511, False), (512, True), (513, True)])
def test_max_command_line_boundary(write_toml: Any, value: int, ok: bool) -> None:
    path = write_toml(f"[limits]\nmax_command_line = {value}\n")
    if ok:
        assert load(path, NO_ENV).limits.max_command_line == value
    else:
        with pytest.raises(ConfigError, match=r"^limits\.max_command_line: "):
            load(path, NO_ENV)


@pytest.mark.parametrize(("port", "ok"), [(0, True), (65535, True), (65536, False)])
def test_listen_port_boundary(write_toml: Any, port: int, ok: bool) -> None:
    path = write_toml(f'[smtp]\nlisten = "127.0.0.1:{port}"\n')
    if ok:
        assert load(path, NO_ENV).smtp.listen == f"127.0.0.1:{port}"
    else:
        with pytest.raises(ConfigError, match=r"^smtp\.listen: .*out of range"):
            load(path, NO_ENV)


@pytest.mark.parametrize(("min_size", "ok"), [(9, True), (10, True), (11, False)])
def test_pool_min_size_boundary(write_toml: Any, min_size: int, ok: bool) -> None:
    path = write_toml(f"[database]\npool_min_size = {min_size}\npool_max_size = 10\n")
    if ok:
        assert load(path, NO_ENV).database.pool_min_size == min_size
    else:
        with pytest.raises(ConfigError, match=r"^database\.pool_min_size: "):
            load(path, NO_ENV)


@pytest.mark.parametrize(
    ("toml", "env"),
    [("", {"RELAY_SMTP__COMMAND_TIMEOUT": "nan"}), ("[smtp]\ncommand_timeout = nan\n", {})],
)
def test_nan_timeout_is_rejected(write_toml: Any, toml: str, env: dict[str, str]) -> None:
    assert _error(write_toml, toml, env).startswith("smtp.command_timeout: ")


def test_invalid_toml_names_the_file(write_toml: Any) -> None:
    path = write_toml("[smtp\nlisten = 1\n")
    with pytest.raises(ConfigError) as info:
        load(path, NO_ENV)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "TOML" in message
    assert "\n" not in message


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError, match="no such configuration file") as info:
        load(path, NO_ENV)
    assert str(info.value).startswith(f"{path}: ")


def test_config_error_hides_the_internal_cause(write_toml: Any) -> None:
    """The CLI prints one line; a chained cattrs/ValueError would invite a traceback."""
    with pytest.raises(ConfigError) as info:
        load(write_toml("[smtp]\nmax_connections = -1\n"), NO_ENV)
    assert info.value.__cause__ is None and info.value.__suppress_context__


# ---------------------------------------------------------------- listen and redaction


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:2587", ("127.0.0.1", 2587)),
        ("[::1]:2587", ("::1", 2587)),
        ("relay.example:25", ("relay.example", 25)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


def test_redacted_hides_the_database_password(write_toml: Any) -> None:
    config = load(write_toml(""), {"DATABASE_URL": "postgresql://relay:hunter2@db.internal:5432/relay"})
    shown = redacted(config)
    assert shown["database"]["url"] == "postgresql://relay:***@db.internal:5432/relay"
    assert "hunter2" not in repr(shown)
    assert "hunter2" not in repr(config)
    # the real value is still there for the code that connects
    assert config.database.url.endswith(":hunter2@db.internal:5432/relay")


def test_redacted_hides_a_percent_encoded_password(write_toml: Any) -> None:
    config = load(write_toml(""), {"DATABASE_URL": "postgresql://relay:p%40ss%3Aword@db/relay"})
    shown = redacted(config)["database"]["url"]
    assert shown == "postgresql://relay:***@db/relay"


def test_redacted_leaves_a_url_without_password_alone(write_toml: Any) -> None:
    config = load(write_toml(""), {"DATABASE_URL": "postgresql://relay@db/relay"})
    assert redacted(config)["database"]["url"] == "postgresql://relay@db/relay"


def test_redacted_hides_a_password_in_the_query(write_toml: Any) -> None:
    config = load(write_toml(""), {"DATABASE_URL": "postgresql://relay@db/relay?password=hunter2"})
    assert "hunter2" not in repr(redacted(config))


def test_redacted_has_every_section_and_key() -> None:
    shown = redacted(Config())
    assert set(shown) == set(SECTIONS)
    for name, cls in SECTIONS.items():
        assert set(shown[name]) == {f.name for f in attrs.fields(cls)}


def test_config_module_exports_exist() -> None:
    for name in config_mod.__all__:
        assert hasattr(config_mod, name), name


def test_redacted_hides_the_console_session_key() -> None:
    from relay.config import ConsoleConfig, redacted

    config = Config(console=ConsoleConfig(session_key="s3cret-session-key"))
    assert "s3cret-session-key" not in repr(config)
    assert redacted(config)["console"]["session_key"] == "***"
