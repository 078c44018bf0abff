"""Provider configurations: one frozen attrs class per provider type, shared by the API
(which validates and stores them) and the delivery worker (which builds drivers from
them), so each key, its default and its limits are written once.

Strategy: a class per type declares every key with its type, default, validator and a
description (``metadata["description"]``); secrets carry ``metadata["secret"]`` and
``repr=False``. ``structure`` turns a JSON object into an instance with cattrs, in two
steps: cattrs checks the JSON types (strictly: ``true`` is not a number, ``"25"`` is not
a port, ``null`` is not a value) and that required keys are present; then the class's
own converters and validators check the values (a host name, a port range, a length).
Unknown keys are refused first, since a typo must not be silently ignored. Every problem
becomes one ``InvalidConfig(field, problem)`` naming the first key at fault, which the
API turns into its 422 and the worker into ``ProviderConfigError``. ``json_schema``
derives the JSON Schema the OpenAPI document publishes from the same fields.

The API stores only the keys a client sent (normalized: host names lower-cased); the
defaults live here and are applied when the worker structures the stored config.
"""

from __future__ import annotations

import ipaddress
import json
import typing
from typing import Any, Literal
from urllib.parse import urlsplit

import attrs
import cattrs
from cattrs.errors import ClassValidationError

from .conditions import json_kind
from .models import ProviderType
from .syntax import check_domain

__all__ = [
    "CLASSES",
    "MAX_SECRET",
    "InvalidConfig",
    "MailgunProviderConfig",
    "PostmarkProviderConfig",
    "ProviderConfig",
    "SendGridProviderConfig",
    "SesProviderConfig",
    "SmtpProviderConfig",
    "json_schema",
    "secrets",
    "structure",
]

#: The longest secret (API key, token, password) accepted.
MAX_SECRET = 4096
#: The longest ``base_url``.
MAX_URL = 2048


class InvalidConfig(Exception):
    """A config key is not acceptable. ``str()`` is ``"<field>: <problem>"``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class _Problem(ValueError):
    """A value refused by a cattrs hook; the field is named by cattrs' note."""


def _describe(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ---------------------------------------------------------------- value checks


@attrs.frozen
class _Text:
    """A validator: a non-empty string of at most ``max_length`` characters, no NUL."""

    max_length: int

    def __call__(self, instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
        if value is None:
            return
        if len(value) > self.max_length:
            raise InvalidConfig(attribute.name, f"too long: {len(value)} characters, at most {self.max_length}")
        if not value:
            raise InvalidConfig(attribute.name, "must not be empty")
        if "\x00" in value:
            raise InvalidConfig(attribute.name, "must not contain NUL characters")

    def schema(self) -> dict[str, Any]:
        return {"minLength": 1, "maxLength": self.max_length}


@attrs.frozen
class _Range:
    """A validator: a whole number from ``minimum`` to ``maximum``."""

    minimum: int
    maximum: int

    def __call__(self, instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
        if not self.minimum <= value <= self.maximum:
            raise InvalidConfig(attribute.name, f"must be between {self.minimum} and {self.maximum}, got {value}")

    def schema(self) -> dict[str, Any]:
        return {"minimum": self.minimum, "maximum": self.maximum}


@attrs.frozen
class _Checked:
    """A converter that checks and normalizes a string (host, domain, URL).

    ``check`` returns the normalized value or ``None`` when the value is refused with
    ``problem``; ``json`` is the value's JSON Schema fragment.
    """

    check: typing.Callable[[str], str | None]
    problem: str
    json: dict[str, Any]

    def converter(self) -> attrs.Converter[Any, Any]:
        def convert(value: Any, field: attrs.Attribute[Any]) -> Any:
            if value is None:
                return None
            result = self.check(value) if isinstance(value, str) else None
            if result is None:
                raise InvalidConfig(field.name, self.problem)
            return result

        return attrs.Converter(convert, takes_field=True)


def _host(value: str) -> str | None:
    if value == "localhost" or check_domain(value) is not None:
        return value.lower()
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _url(value: str) -> str | None:
    if len(value) <= MAX_URL:
        parts = urlsplit(value)
        if parts.scheme in ("https", "http") and parts.netloc and not parts.username:
            return value
    return None


_HOST = _Checked(
    _host, "expected a host name such as smtp.example.com or an IP address",
    {"maxLength": 253, "description": "Host name or IP address."},
)
_DOMAIN = _Checked(check_domain, "expected a domain name such as mg.example.com", {"maxLength": 253})
_URL = _Checked(
    _url, "expected an https:// URL without credentials, e.g. https://api.example.com",
    {"format": "uri", "maxLength": MAX_URL},
)


# ---------------------------------------------------------------- fields


def _field(
    description: str = "",
    *,
    default: Any = attrs.NOTHING,
    validator: Any = None,
    checked: _Checked | None = None,
    secret: bool = False,
) -> Any:
    """One config key. ``default`` left out: required. ``secret``: write-only, not in repr."""
    metadata: dict[str, Any] = {"description": description, "secret": secret}
    if checked is not None:
        metadata["json"] = checked.json
        metadata["problem"] = checked.problem  # also for a value that is not a string
    return attrs.field(
        default=default,
        validator=validator,
        converter=checked.converter() if checked is not None else None,
        repr=not secret,
        metadata=metadata,
    )


def _secret(description: str, *, required: bool = True) -> Any:
    return _field(
        description + " Write-only.", default=attrs.NOTHING if required else None,
        validator=_Text(MAX_SECRET), secret=True,
    )


def _base_url() -> Any:
    return _field(
        "Override the provider's endpoint (regional endpoints, tests).", default=None, checked=_URL
    )


def _default_port(config: SmtpProviderConfig) -> int:
    return 465 if config.tls == "implicit" else 587


@attrs.frozen
class SmtpProviderConfig:
    """An SMTP upstream (``relay/worker/providers/smtp.py``)."""

    host: str = _field(checked=_HOST)
    tls: Literal["none", "starttls", "implicit"] = _field("Default starttls.", default="starttls")
    port: int = _field(
        "Default 587, or 465 with tls implicit.",
        default=attrs.Factory(_default_port, takes_self=True), validator=_Range(1, 65535),
    )
    verify: bool = _field("Verify the upstream's certificate; default true.", default=True)
    ca_file: str | None = _field(
        "PEM file of CAs to trust instead of the system's.", default=None, validator=_Text(1024)
    )
    username: str | None = _field("AUTH user name; omit for no AUTH.", default=None, validator=_Text(256))
    password: str | None = _secret("AUTH password.", required=False)

    @property
    def peer(self) -> str:
        return f"{self.host}:{self.port}"


@attrs.frozen
class SendGridProviderConfig:
    """SendGrid's v3 API (``relay/worker/providers/sendgrid.py``)."""

    api_key: str = _secret("SendGrid API key.")
    base_url: str | None = _base_url()


@attrs.frozen
class MailgunProviderConfig:
    """Mailgun's raw-MIME endpoint (``relay/worker/providers/mailgun.py``)."""

    api_key: str = _secret("Mailgun API key.")
    domain: str = _field(checked=_DOMAIN)
    region: Literal["us", "eu"] = _field("Mailgun region; default us.", default="us")
    base_url: str | None = _base_url()


@attrs.frozen
class SesProviderConfig:
    """Amazon SES API v2 (``relay/worker/providers/ses.py``)."""

    region: str = _field("AWS region, e.g. eu-west-1.", validator=_Text(32))
    access_key_id: str = _field(validator=_Text(128))
    secret_access_key: str = _secret("AWS secret access key.")
    session_token: str | None = _secret("Temporary credentials' session token.", required=False)
    configuration_set: str | None = _field(default=None, validator=_Text(64))
    base_url: str | None = _base_url()


@attrs.frozen
class PostmarkProviderConfig:
    """Postmark's /email endpoint (``relay/worker/providers/postmark.py``)."""

    server_token: str = _secret("Postmark server token.")
    message_stream: str = _field("Default outbound.", default="outbound", validator=_Text(100))
    base_url: str | None = _base_url()


ProviderConfig = (
    SmtpProviderConfig | SendGridProviderConfig | MailgunProviderConfig | SesProviderConfig
    | PostmarkProviderConfig
)

CLASSES: dict[ProviderType, type[Any]] = {
    ProviderType.SMTP: SmtpProviderConfig,
    ProviderType.SENDGRID: SendGridProviderConfig,
    ProviderType.MAILGUN: MailgunProviderConfig,
    ProviderType.SES: SesProviderConfig,
    ProviderType.POSTMARK: PostmarkProviderConfig,
}


def secrets(cls: type[Any]) -> tuple[str, ...]:
    """The write-only keys of a config class."""
    return tuple(a.name for a in attrs.fields(cls) if a.metadata.get("secret"))


# ---------------------------------------------------------------- structuring


def _strict(kind: type, expected: str) -> typing.Callable[[Any, Any], Any]:
    def hook(value: Any, _type: Any) -> Any:
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _Problem(f"expected {expected}, got {json_kind(value)}")
        return value

    return hook


def _is_optional(type_: Any) -> bool:
    args = typing.get_args(type_)
    return len(args) == 2 and type(None) in args


def _not_null(type_: Any) -> typing.Callable[[Any, Any], Any]:
    """``X | None`` means "may be left out", not "may be null": null is refused as X would."""
    inner = next(a for a in typing.get_args(type_) if a is not type(None))
    return lambda value, _type: _converter.structure(value, inner)


def _is_literal(type_: Any) -> bool:
    return typing.get_origin(type_) is Literal


def _one_of(type_: Any) -> typing.Callable[[Any, Any], Any]:
    choices = typing.get_args(type_)

    def hook(value: Any, _type: Any) -> Any:
        if not isinstance(value, str) or value not in choices:
            raise _Problem(f"must be one of {', '.join(choices)}; got {_describe(value)}")
        return value

    return hook


_converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
_converter.register_structure_hook(str, _strict(str, "a string"))
_converter.register_structure_hook(int, _strict(int, "a whole number"))
_converter.register_structure_hook(bool, _strict(bool, "true or false"))
_converter.register_structure_hook_factory(_is_optional, _not_null)
_converter.register_structure_hook_factory(_is_literal, _one_of)


def structure(cls: type[Any], data: Any) -> Any:
    """An instance of ``cls`` from a JSON object.

    Raises:
        InvalidConfig: naming the first key at fault (``""`` when ``data`` is not an
            object), with what to do.
    """
    if not isinstance(data, dict):
        raise InvalidConfig("", f"expected a JSON object, got {json_kind(data)}")
    names = [a.name for a in attrs.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise InvalidConfig(unknown[0], f"unknown field; expected one of {', '.join(names)}")
    try:
        return _converter.structure(data, cls)
    except ClassValidationError as exc:
        noted, others = exc.group_exceptions()
        if not noted:  # the types were right; a converter or validator refused a value
            found = next((e for e in others if isinstance(e, InvalidConfig)), None)
            if found is None:
                raise
            raise found from None
        first, note = min(noted, key=lambda pair: names.index(pair[1].name))
        problem = "is required" if isinstance(first, KeyError) else str(first)
        if isinstance(first, _Problem):  # the wrong JSON type; a host, URL... says which
            problem = attrs.fields_dict(cls)[note.name].metadata.get("problem", problem)
        raise InvalidConfig(note.name, problem) from None


# ---------------------------------------------------------------- JSON Schema


def _type_schema(type_: Any) -> dict[str, Any]:
    if _is_optional(type_):
        return _type_schema(next(a for a in typing.get_args(type_) if a is not type(None)))
    if _is_literal(type_):
        return {"type": "string", "enum": list(typing.get_args(type_))}
    return {str: {"type": "string"}, int: {"type": "integer"}, bool: {"type": "boolean"}}[type_]


def _field_schema(field: attrs.Attribute[Any]) -> dict[str, Any]:
    schema = _type_schema(field.type)
    schema.update(field.metadata.get("json", {}))
    if isinstance(field.validator, (_Text, _Range)):
        schema.update(field.validator.schema())
    if field.default is not None and isinstance(field.default, (str, int, bool)):
        schema["default"] = field.default
    if field.metadata.get("description"):
        schema["description"] = field.metadata["description"]
    if field.metadata.get("secret"):
        schema["writeOnly"] = True
    return schema


def json_schema(cls: type[Any], *, secret_shown_as: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON Schema of a config class: as requests send it, or with
    ``secret_shown_as`` in each secret's place (always present) as responses show it."""
    attrs.resolve_types(cls)
    properties: dict[str, Any] = {}
    required = []
    for field in attrs.fields(cls):
        if secret_shown_as is not None and field.metadata.get("secret"):
            properties[field.name] = dict(secret_shown_as)
            required.append(field.name)
            continue
        properties[field.name] = _field_schema(field)
        if field.default is attrs.NOTHING:
            required.append(field.name)
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema
