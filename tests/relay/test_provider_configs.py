"""relay.provider_configs: one class per provider type, for the API and the worker alike."""

from __future__ import annotations

from typing import Any

import attrs
import jsonschema
import pytest

from relay import provider_configs as pc
from relay.models import ProviderType
from relay.syntax import check_domain, check_email, is_host_name


def test_every_type_has_a_frozen_class() -> None:
    assert set(pc.CLASSES) == set(ProviderType)
    for cls in pc.CLASSES.values():
        assert attrs.has(cls) and cls.__setattr__ is not object.__setattr__


def test_defaults_live_in_the_class() -> None:
    smtp = pc.structure(pc.SmtpProviderConfig, {"host": "SMTP.Example.NET"})
    assert (smtp.host, smtp.port, smtp.tls, smtp.verify) == ("smtp.example.net", 587, "starttls", True)
    assert pc.structure(pc.SmtpProviderConfig, {"host": "h.example", "tls": "implicit"}).port == 465
    assert pc.structure(pc.SmtpProviderConfig, {"host": "::0:1"}).host == "::1"
    assert pc.structure(pc.PostmarkProviderConfig, {"server_token": "t"}).message_stream == "outbound"
    assert pc.structure(pc.MailgunProviderConfig, {"api_key": "k", "domain": "mg.example.com"}).region == "us"


@pytest.mark.parametrize(("cls", "data", "field", "words"), [
    (pc.SmtpProviderConfig, {}, "host", "is required"),
    (pc.SmtpProviderConfig, {"host": "h.example", "port": True}, "port", "expected a whole number, got a boolean"),
    (pc.SmtpProviderConfig, {"host": "h.example", "port": "25"}, "port", "expected a whole number, got a string"),
    (pc.SmtpProviderConfig, {"host": "h.example", "port": None}, "port", "got null"),
    (pc.SmtpProviderConfig, {"host": "h.example", "port": 0}, "port", "between 1 and 65535"),
    (pc.SmtpProviderConfig, {"host": "h.example", "verify": 1}, "verify", "true or false"),
    (pc.SmtpProviderConfig, {"host": "h.example", "username": ""}, "username", "must not be empty"),
    (pc.SmtpProviderConfig, {"host": "h.example", "username": "a\x00b"}, "username", "NUL"),
    (pc.SmtpProviderConfig, {"host": "h.example", "tls": None}, "tls", "one of none, starttls, implicit"),
    # unknown keys come first, whatever else is wrong
    (pc.SmtpProviderConfig, {"port": "x", "hots": "h.example"}, "hots", "unknown field; expected one of host"),
    # the first key at fault in declaration order
    (pc.SesProviderConfig, {"access_key_id": 5}, "region", "is required"),
    (pc.SendGridProviderConfig, {"api_key": "k", "base_url": "https://user@api.example"}, "base_url", "without credentials"),
    (pc.MailgunProviderConfig, {"api_key": "k", "domain": "localhost"}, "domain", "domain name"),
    # a host, domain or URL of the wrong JSON type gets the same words as a bad string
    (pc.SmtpProviderConfig, {"host": 5}, "host", "expected a host name such as smtp.example.com"),
    (pc.MailgunProviderConfig, {"api_key": "k", "domain": None}, "domain", "expected a domain name"),
])
def test_refusals_name_the_key(cls: type, data: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(pc.InvalidConfig) as caught:
        pc.structure(cls, data)
    assert caught.value.field == field
    assert words in caught.value.problem


def test_not_an_object() -> None:
    with pytest.raises(pc.InvalidConfig) as caught:
        pc.structure(pc.PostmarkProviderConfig, ["server_token"])
    assert caught.value.field == "" and "expected a JSON object, got a list" in caught.value.problem


def test_secrets_are_marked_and_never_shown() -> None:
    assert pc.secrets(pc.SmtpProviderConfig) == ("password",)
    assert pc.secrets(pc.SesProviderConfig) == ("secret_access_key", "session_token")
    config = pc.structure(pc.SesProviderConfig, {
        "region": "eu-west-1", "access_key_id": "AKID", "secret_access_key": "s3cr3t", "session_token": "t0k3n"})
    assert "s3cr3t" not in repr(config) and "t0k3n" not in repr(config)


@pytest.mark.parametrize("kind", list(ProviderType))
def test_schema_agrees_with_structure(kind: ProviderType) -> None:
    """What the schema allows, ``structure`` accepts, and the reverse for these samples."""
    cls = pc.CLASSES[kind]
    schema = pc.json_schema(cls)
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {a.name for a in attrs.fields(cls)}
    for name in pc.secrets(cls):
        assert schema["properties"][name]["writeOnly"] is True
    minimal = {name: "mg.example.com" if name == "domain" else "h.example" if name == "host" else "x"
               for name in schema.get("required", ())}
    jsonschema.validate(minimal, schema)
    pc.structure(cls, minimal)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**minimal, "typo": 1}, schema)
    shown = pc.json_schema(cls, secret_shown_as={"const": "hidden"})
    assert set(pc.secrets(cls)) <= set(shown["required"])


def test_smtp_schema_carries_types_limits_and_defaults() -> None:
    props = pc.json_schema(pc.SmtpProviderConfig)["properties"]
    assert props["port"] == {"type": "integer", "minimum": 1, "maximum": 65535,
                             "description": "Default 587, or 465 with tls implicit."}
    assert props["tls"]["enum"] == ["none", "starttls", "implicit"] and props["tls"]["default"] == "starttls"
    assert props["verify"]["default"] is True
    assert pc.json_schema(pc.SmtpProviderConfig)["required"] == ["host"]


@pytest.mark.parametrize(("text", "domain"), [
    ("Example.COM", "example.com"),
    ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("localhost", None),  # a setting's domain needs a dot
    ("-bad.example", None),
    ("acme..example", None),
    ("bad_domain.example", None),
    ("bücher.example", None),  # internationalized names in their xn-- form
    ("[192.0.2.1]", None),
    ("a" * 64 + ".example", None),
    (("a" * 63 + ".") * 4 + "example", None),  # over 253
])
def test_domains_on_protos_grammar(text: str, domain: str | None) -> None:
    assert check_domain(text) == domain
    assert is_host_name("localhost")


@pytest.mark.parametrize(("text", "ok"), [
    ("alice@example.com", True),
    ("a.b+tag@example.com", True),
    ('"quoted"@example.com', False),
    (".alice@example.com", False),
    ("a..b@example.com", False),
    ("alice@localhost", False),
    ("alice@[192.0.2.1]", False),
    ("a" * 65 + "@example.com", False),
    ("älice@example.com", False),
])
def test_emails_on_protos_grammar(text: str, ok: bool) -> None:
    assert check_email(text) is ok
