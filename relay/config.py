"""Typed configuration: TOML file, then environment overrides, then validation.

Strategy: every section is a frozen attrs class whose attributes carry their default
and validator, so the classes below are the single source of truth for what a key
means. ``load()`` reads a TOML file (``conf/relay.toml`` by default), overlays
``RELAY_<SECTION>__<KEY>`` environment variables (and ``DATABASE_URL``), and lets
cattrs structure the result with unknown keys forbidden. Any failure becomes one
``ConfigError`` whose message names the key and the problem, so the CLI can print a
single line instead of a traceback.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import tomllib
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn

__all__ = [
    "ApiConfig",
    "Config",
    "ConfigError",
    "ConsoleConfig",
    "DatabaseConfig",
    "DkimConfig",
    "LimitsConfig",
    "LoggingConfig",
    "SmtpConfig",
    "TlsConfig",
    "WebhooksConfig",
    "WorkerConfig",
    "default_config_path",
    "load",
    "parse_listen",
    "redacted",
]

ENV_PREFIX = "RELAY_"

#: The project root when running from a checkout (``conf/``, ``sql/`` and ``var/`` live here).
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and what to do."""


# ---------------------------------------------------------------- validators


class _InvalidValue(ValueError):
    """A validator's complaint about one key; ``_describe`` adds the section."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def _positive(inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:  # also refuses NaN
        raise _InvalidValue(attribute.name, f"must be greater than 0, got {value!r}")


def _non_negative(inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value >= 0:  # also refuses NaN
        raise _InvalidValue(attribute.name, f"must be 0 or more, got {value!r}")


def _listen(inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value:
        try:
            parse_listen(value)
        except ValueError as exc:
            raise _InvalidValue(attribute.name, str(exc)) from None


def _fraction(inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 < value <= 1.0:
        raise _InvalidValue(attribute.name, f"must be above 0 and at most 1; got {value}")


def _one_of(*choices: str) -> Callable[[Any, attrs.Attribute[Any], str], None]:
    def check(inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
        if value not in choices:
            raise _InvalidValue(
                attribute.name, f"must be one of {', '.join(choices)}; got {value!r}"
            )

    return check


def _networks(inst: Any, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise _InvalidValue(
                attribute.name, f"{item!r} is not an IP network such as 10.0.0.0/8"
            ) from None


def _database_url(inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if value and urlsplit(value).scheme not in ("postgres", "postgresql"):
        raise _InvalidValue(
            attribute.name, "must be a postgresql:// URL, or empty for the embedded database"
        )


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6) into its parts.

    Raises:
        ValueError: with a message saying what form is expected.
    """
    host, sep, port_text = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{value!r} must look like HOST:PORT, e.g. 127.0.0.1:2587")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{value!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"{value!r}: port {port} is out of range 0-65535")
    return host, port


# ---------------------------------------------------------------- sections


@attrs.frozen
class DatabaseConfig:
    """Where the data lives.

    ``url`` empty means: run the embedded PostgreSQL from the ``pgserver`` package with
    its data under ``embedded_dir``, so a fresh checkout works with no set-up.
    """

    url: str = attrs.field(default="", validator=_database_url, repr=False)
    embedded_dir: str = "var/pgdata"
    pool_min_size: int = attrs.field(default=2, validator=_positive)
    pool_max_size: int = attrs.field(default=10, validator=_positive)
    connect_timeout: float = attrs.field(default=10.0, validator=_positive)
    #: Seconds an operation waits for a free pooled connection (past it: unavailable,
    #: SMTP 451, API 503) — the pool being busy, not the database being down.
    acquire_timeout: float = attrs.field(default=10.0, validator=_positive)
    command_timeout: float = attrs.field(default=30.0, validator=_positive)
    #: Prepared statements each connection keeps (asyncpg's LRU cache); relay has
    #: fewer distinct statements than this, so each is prepared once per connection.
    #: 0 turns the cache off, as PgBouncer in transaction mode needs.
    statement_cache_size: int = attrs.field(default=256, validator=_non_negative)
    migrate_on_start: bool = True

    def __attrs_post_init__(self) -> None:
        if self.pool_min_size > self.pool_max_size:
            raise _InvalidValue(
                "pool_min_size",
                f"must not exceed pool_max_size ({self.pool_min_size} > {self.pool_max_size})",
            )


@attrs.frozen
class SmtpConfig:
    """The submission listener (RFC 6409)."""

    listen: str = attrs.field(default="0.0.0.0:587", validator=_listen)
    #: Processes serving SMTP on the same ports (SO_REUSEPORT), supervised by the
    #: command that starts them; 0 = one per core. Limits are per process until they
    #: are shared, so the default stays 1 (see README).
    processes: int = attrs.field(default=1, validator=_non_negative)
    #: Implicit-TLS submission (RFC 8314 §3.3, port 465); empty = not served.
    implicit_tls_listen: str = attrs.field(default="", validator=_listen)
    hostname: str = ""
    max_connections: int = attrs.field(default=1000, validator=_positive)
    #: Connections open at once from one IP (Postfix's smtpd_client_connection_count_limit).
    max_connections_per_ip: int = attrs.field(default=50, validator=_positive)
    #: Networks not subject to max_connections_per_ip (none by default).
    per_ip_exempt_networks: tuple[str, ...] = attrs.field(
        default=(), converter=tuple, validator=_networks
    )
    listen_backlog: int = attrs.field(default=4096, validator=_positive)
    max_message_size: int = attrs.field(default=25 * 1024 * 1024, validator=_positive)
    max_recipients: int = attrs.field(default=100, validator=_positive)
    trusted_networks: tuple[str, ...] = attrs.field(
        default=("127.0.0.0/8", "::1/128"), converter=tuple, validator=_networks
    )
    #: RFC 4954 §4 / RFC 8314: never accept a password over plaintext unless told to.
    auth_require_tls: bool = True
    auth_failure_limit: int = attrs.field(default=5, validator=_positive)
    auth_failure_window: float = attrs.field(default=300.0, validator=_positive)
    auth_block_time: float = attrs.field(default=900.0, validator=_positive)
    #: Seconds between two exchanges of limit counts with the deployment's other SMTP
    #: processes (through PostgreSQL); 0 = every process enforces limits alone.
    shared_limits_interval: float = attrs.field(default=1.0, validator=_non_negative)
    auth_failure_delay: float = attrs.field(default=1.0, validator=_non_negative)
    credential_cache_ttl: float = attrs.field(default=60.0, validator=_non_negative)
    #: Seconds a login's account row and a client address's IP credential are answered
    #: from memory; any change to either, from any process, drops them at once
    #: (LISTEN/NOTIFY), so this only bounds a missed notification. 0 = read every time.
    account_cache_ttl: float = attrs.field(default=30.0, validator=_non_negative)
    #: Seconds an account seen without suppression entries is answered from memory at
    #: RCPT (its first entry acts within this long); 0 = look every time.
    suppression_cache_ttl: float = attrs.field(default=2.0, validator=_non_negative)
    #: New connections per minute from one IP (trusted networks exempt).
    ip_connection_rate: int = attrs.field(default=120, validator=_positive)
    #: RFC 5321 §4.5.3.2.7 suggests 5 minutes; a submission server can be stricter.
    command_timeout: float = attrs.field(default=30.0, validator=_positive)
    #: Whole-DATA limit; RFC 5321 §4.5.3.2.6 suggests 10 minutes.
    data_timeout: float = attrs.field(default=600.0, validator=_positive)
    #: Octets per second a message must average after its first command_timeout
    #: seconds (Postfix's smtpd_min_data_rate), so a trickle cannot hold a slot.
    min_data_rate: int = attrs.field(default=500, validator=_positive)
    #: EHLO/HELO, NOOP, RSET, VRFY, HELP since the last accepted message before
    #: 421 4.7.0 (Postfix's smtpd_junk_command_limit).
    max_junk_commands: int = attrs.field(default=100, validator=_positive)
    #: Process-wide bytes of message content held in memory at once.
    memory_budget: int = attrs.field(default=256 * 1024 * 1024, validator=_positive)
    shutdown_timeout: float = attrs.field(default=30.0, validator=_non_negative)
    check_header_from: bool = True
    bare_line_ending_policy: str = attrs.field(
        default="reject", validator=_one_of("reject", "normalize")
    )
    #: A message line over 998 octets (RFC 5321 §4.5.3.1.6): "split" accepts it as
    #: received and the SMTP provider breaks it on delivery (as Postfix does);
    #: "reject" refuses the message with 500 5.5.6.
    long_line_policy: str = attrs.field(default="split", validator=_one_of("split", "reject"))
    #: Defaults for accounts without their own limit; 0 = unlimited.
    account_messages_per_minute: int = attrs.field(default=0, validator=_non_negative)
    account_recipients_per_hour: int = attrs.field(default=0, validator=_non_negative)


@attrs.frozen
class ApiConfig:
    """The admin HTTP API."""

    listen: str = attrs.field(default="127.0.0.1:8080", validator=_listen)
    #: Processes serving the API on the same port (SO_REUSEPORT); 0 = one per core.
    processes: int = attrs.field(default=1, validator=_non_negative)
    #: GET /metrics requires an operator key (default: open, like most exporters).
    metrics_auth: bool = False
    #: Requests per minute per API key.
    rate_limit_per_minute: int = attrs.field(default=100, validator=_positive)
    #: Failed authentications per minute per client address (IPv6: per /64); past it
    #: every request from that address that needs a key is refused (429) unlooked-up.
    auth_failures_per_minute: int = attrs.field(default=30, validator=_positive)
    #: Origins allowed by CORS; empty = CORS off.
    cors_origins: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    max_body_size: int = attrs.field(default=1024 * 1024, validator=_positive)
    #: Seconds a verified API key is trusted without a database read; 0 = read every
    #: time. Rotation, revocation, disable/enable and delete still act at once in every
    #: process (LISTEN/NOTIFY); while that listener is down the cache is bypassed.
    key_cache_ttl: float = attrs.field(default=30.0, validator=_non_negative)
    #: Verified keys kept at most (oldest dropped first).
    key_cache_size: int = attrs.field(default=10_000, validator=_positive)


@attrs.frozen
class ConsoleConfig:
    """The web console under ``/console/``, served by the API's processes."""

    #: Signs the console's session cookies. Empty: a random key per process at start,
    #: so sessions end at a restart and do not work with ``api.processes`` > 1.
    session_key: str = attrs.field(default="", repr=False)
    #: Seconds a console sign-in lasts (the key is still checked on every request).
    session_max_age: float = attrs.field(default=8 * 3600.0, validator=_positive)
    #: Mark the session cookie ``Secure`` on every response. Off: only on requests that
    #: came over TLS, which a TLS-terminating proxy in front of the API hides (the API
    #: trusts no X-Forwarded-* header) — set it there, so the browser never sends the
    #: cookie over plain HTTP.
    secure_cookie: bool = False


@attrs.frozen
class WorkerConfig:
    """The delivery worker and queue housekeeping."""

    batch_size: int = attrs.field(default=32, validator=_positive)
    #: The lease on a claimed message: renewed every third of it while its worker
    #: lives, so a dead worker's messages are taken over within this many seconds.
    lock_timeout: float = attrs.field(default=30.0, validator=_positive)
    retention_days: float = attrs.field(default=7.0, validator=_positive)
    poll_interval: float = attrs.field(default=1.0, validator=_positive)
    #: Deliveries in flight at once, overall and per provider.
    concurrency: int = attrs.field(default=16, validator=_positive)
    per_provider_concurrency: int = attrs.field(default=4, validator=_positive)
    max_attempts: int = attrs.field(default=10, validator=_positive)
    #: Seconds after enqueue when a message that keeps failing temporarily is failed.
    max_age: float = attrs.field(default=2 * 24 * 3600.0, validator=_positive)
    backoff_base: float = attrs.field(default=60.0, validator=_positive)
    backoff_max: float = attrs.field(default=3600.0, validator=_positive)
    #: Consecutive failures that open a provider's circuit breaker, and for how long.
    breaker_threshold: int = attrs.field(default=5, validator=_positive)
    breaker_cooldown: float = attrs.field(default=60.0, validator=_positive)
    connect_timeout: float = attrs.field(default=30.0, validator=_positive)
    send_timeout: float = attrs.field(default=120.0, validator=_positive)
    housekeeping_interval: float = attrs.field(default=60.0, validator=_positive)


@attrs.frozen
class WebhooksConfig:
    """Webhook delivery (by ``relay worker``) and the URLs endpoints may have."""

    #: Allow ``http://`` endpoint URLs (development only: the events then travel in clear).
    allow_http: bool = False
    #: Allow endpoints on loopback, private, link-local and other non-public addresses.
    allow_private_networks: bool = False
    #: Requests in flight at once, overall and per endpoint.
    concurrency: int = attrs.field(default=8, validator=_positive)
    per_endpoint_concurrency: int = attrs.field(default=2, validator=_positive)
    #: Seconds one request may take, connection included.
    timeout: float = attrs.field(default=10.0, validator=_positive)
    #: Seconds after an event was recorded when a delivery that keeps failing is given up.
    max_age: float = attrs.field(default=24 * 3600.0, validator=_positive)
    #: Delay after the first failure, doubled after each further one, up to backoff_max.
    backoff_base: float = attrs.field(default=30.0, validator=_positive)
    backoff_max: float = attrs.field(default=3600.0, validator=_positive)
    poll_interval: float = attrs.field(default=1.0, validator=_positive)
    #: Octets of a receiver's answer read (and kept in the attempt's record).
    max_response_bytes: int = attrs.field(default=4096, validator=_positive)


@attrs.frozen
class TlsConfig:
    """Certificate and key for STARTTLS; empty means a self-signed pair under ``self_signed_dir``."""

    cert_file: str = ""
    key_file: str = ""
    self_signed_dir: str = "var/tls"

    def __attrs_post_init__(self) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            raise _InvalidValue("cert_file", "cert_file and key_file must be set together")


def _kek(inst: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not value:
        return
    try:
        kek = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        kek = b""
    if len(kek) != 32:
        # Never quote the value: it is (meant to be) a secret.
        raise _InvalidValue(
            attribute.name,
            "must be the base64 of 32 random octets; make one with"
            ' python3 -c "import os,base64;print(base64.b64encode(os.urandom(32)).decode())"',
        )


@attrs.frozen
class DkimConfig:
    """DKIM signing (``relay.dkim``). Keys are made and published through the API."""

    #: Encrypts every DKIM private key at rest (AES-256-GCM): the base64 of 32 random
    #: octets. Empty: no key can be created or imported, and nothing is signed. Losing
    #: it makes the stored keys useless; the SMTP service needs the same value.
    key_encryption_key: str = attrs.field(default="", validator=_kek, repr=False)
    #: Seconds the SMTP service keeps an account's enabled keys without asking the
    #: database: a key enabled, disabled or deleted signs (or stops) within this long.
    key_cache_ttl: float = attrs.field(default=5.0, validator=_positive)


@attrs.frozen
class ProcessConfig:
    """The running process."""

    #: Where ``relay serve|smtp|api|worker`` writes its pid (``{command}`` is the
    #: command), so ``relay reload`` can find it.
    pid_file: str = "var/relay-{command}.pid"


@attrs.frozen
class MetricsConfig:
    """Prometheus metrics. The API serves them at ``GET /metrics``; a process that
    runs no API (``relay smtp``, ``relay worker``) serves them on ``listen``."""

    #: host:port for /metrics in processes without the API; empty = off.
    listen: str = attrs.field(default="", validator=_listen)
    #: Seconds between samples of levels (pool, queue depth: one query per worker process).
    sample_interval: float = attrs.field(default=15.0, validator=_positive)


@attrs.frozen
class LoggingConfig:
    level: str = attrs.field(
        default="info", validator=_one_of("debug", "info", "warning", "error")
    )
    #: ``auto``: human-readable on a terminal, JSON lines otherwise.
    format: str = attrs.field(default="auto", validator=_one_of("auto", "json", "console"))
    #: Share of the high-volume info lines written (one per accepted message, API
    #: request, delivered message); warnings and errors are never sampled.
    sample_rate: float = attrs.field(default=1.0, validator=_fraction)


@attrs.frozen
class LimitsConfig:
    """Protocol limits, each from the RFC that sets its minimum."""

    #: RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with its CRLF.
    max_command_line: int = attrs.field(default=512, validator=_positive)
    #: RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets with its CRLF.
    max_text_line: int = attrs.field(default=1000, validator=_positive)
    #: Consecutive protocol errors before the session is ended with 421.
    max_errors: int = attrs.field(default=10, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.max_command_line < 512:
            raise _InvalidValue("max_command_line", "must be at least 512 (RFC 5321 §4.5.3.1.4)")
        if self.max_text_line < 1000:
            raise _InvalidValue("max_text_line", "must be at least 1000 (RFC 5321 §4.5.3.1.6)")


@attrs.frozen
class Config:
    database: DatabaseConfig = DatabaseConfig()
    smtp: SmtpConfig = SmtpConfig()
    api: ApiConfig = ApiConfig()
    console: ConsoleConfig = ConsoleConfig()
    worker: WorkerConfig = WorkerConfig()
    webhooks: WebhooksConfig = WebhooksConfig()
    tls: TlsConfig = TlsConfig()
    logging: LoggingConfig = LoggingConfig()
    limits: LimitsConfig = LimitsConfig()
    metrics: MetricsConfig = MetricsConfig()
    process: ProcessConfig = ProcessConfig()
    dkim: DkimConfig = DkimConfig()

    def resolve_path(self, value: str) -> Path:
        """A relative path in the configuration is relative to the project root."""
        path = Path(value)
        return path if path.is_absolute() else PROJECT_ROOT / path


# ---------------------------------------------------------------- loading

_SECTIONS: dict[str, type] = {
    f.name: typing.get_type_hints(Config)[f.name] for f in attrs.fields(Config)
}


def _converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)

    def strict_int(value: Any, _: type) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected an integer, got {value!r}")
        return value

    def strict_float(value: Any, _: type) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"expected a number, got {value!r}")
        return float(value)

    def strict_str(value: Any, _: type) -> str:
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {value!r}")
        return value

    def strict_bool(value: Any, _: type) -> bool:
        if not isinstance(value, bool):
            raise TypeError(f"expected true or false, got {value!r}")
        return value

    def str_tuple(value: Any, _: type) -> tuple[str, ...]:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise TypeError(f"expected a list of strings, got {value!r}")
        return tuple(value)

    conv.register_structure_hook(int, strict_int)
    conv.register_structure_hook(float, strict_float)
    conv.register_structure_hook(str, strict_str)
    conv.register_structure_hook(bool, strict_bool)
    conv.register_structure_hook_func(lambda t: t == tuple[str, ...], str_tuple)
    for cls in (*_SECTIONS.values(), Config):
        conv.register_structure_hook(
            cls, make_dict_structure_fn(cls, conv, _cattrs_forbid_extra_keys=True)
        )
    return conv


def _env_value(raw: str, target: Any, name: str) -> Any:
    """Turn an environment string into the type the key expects."""
    if target is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}: expected true or false, got {raw!r}")
    if target is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if target is float:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if typing.get_origin(target) is tuple:
        text = raw.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{name}: not a JSON list ({exc.msg})") from None
        return [part.strip() for part in text.split(",") if part.strip()]
    return raw


def _apply_env(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    if environ.get("DATABASE_URL") and not environ.get("RELAY_DATABASE__URL"):
        data.setdefault("database", {})["url"] = environ["DATABASE_URL"]
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        cls = _SECTIONS.get(section)
        if cls is None:
            raise ConfigError(
                f"{name}: no configuration section {section!r}"
                f" (sections: {', '.join(_SECTIONS)})"
            )
        hints = typing.get_type_hints(cls)
        if key not in hints:
            raise ConfigError(f"{name}: {section} has no key {key!r}")
        value = _env_value(raw, hints[key], name)
        target = data.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"{section}: expected a table")
        target[key] = value


def _describe(exc: BaseException, path: str) -> str:
    """Find the innermost cause of a cattrs error and name its key."""
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        keys = ", ".join(sorted(exc.extra_fields))
        if not path:
            return f"{keys}: unknown section (sections: {', '.join(_SECTIONS)})"
        return f"{path}: unknown key {keys}"
    if isinstance(exc, BaseExceptionGroup):
        sub = exc.exceptions[0]
        note = next(iter(getattr(sub, "__notes__", [])), "")
        field = getattr(note, "name", None)
        child = f"{path}.{field}" if path and field else (field or path)
        return _describe(sub, child)
    if isinstance(exc, _InvalidValue):
        return f"{path}.{exc.key}: {exc.problem}" if path else str(exc)
    return f"{path}: {exc}" if path else str(exc)


def default_config_path() -> Path:
    return PROJECT_ROOT / "conf" / "relay.toml"


def load(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the configuration file, apply environment overrides and validate.

    Args:
        path: a TOML file; ``None`` uses ``conf/relay.toml`` if it exists, else defaults.
        environ: the environment to read overrides from (``os.environ`` by default).

    Raises:
        ConfigError: one line naming the key and the problem.
    """
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is None:
        candidate = default_config_path()
        path = candidate if candidate.exists() else None
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such configuration file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    for section, value in data.items():
        if section in _SECTIONS and not isinstance(value, dict):
            raise ConfigError(f"{section}: expected a [{section}] table, got {value!r}")
    _apply_env(data, environ)
    converter = _converter()
    try:
        return converter.structure(data, Config)
    except (cattrs.BaseValidationError, cattrs.ForbiddenExtraKeysError) as exc:
        raise ConfigError(_describe(exc, "")) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


# ---------------------------------------------------------------- display

_SECRET_KEYS = {"password", "secret", "api_key", "token", "key_encryption_key", "session_key"}


def _redact_url(url: str) -> str:
    """Hide a password in the user part and in libpq's ``?password=`` parameters."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1))
    if parts.query:
        query = [
            (k, "***" if k.lower() in ("password", "sslpassword") and v else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(query, safe="/*"))
    return urlunsplit(parts)


def redacted(config: Config) -> dict[str, Any]:
    """The effective configuration as plain data with secrets replaced by ``***``."""
    data: dict[str, Any] = cattrs.unstructure(config)
    data["database"]["url"] = _redact_url(config.database.url)
    for section in data.values():
        for key in list(section):
            if key in _SECRET_KEYS and section[key]:
                section[key] = "***"
    return data
