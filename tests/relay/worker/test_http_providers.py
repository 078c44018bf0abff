"""HTTP providers against a local HTTP server: request shape and answer classification."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import trio

from relay.models import ProviderType
from relay.worker import providers
from relay.worker.providers import Verdict
from relay.worker.providers.base import ProviderConfigError

from . import httpserver
from .helpers import RAW, RCPT, envelope, provider


def context(http: httpx.AsyncClient) -> providers.Context:
    return providers.Context(http=http, connect_timeout=1, send_timeout=1)


CONFIGS: dict[ProviderType, Callable[[str], dict[str, Any]]] = {
    ProviderType.SENDGRID: lambda url: {"api_key": "SG.secret", "base_url": url},
    ProviderType.MAILGUN: lambda url: {"api_key": "key-secret", "domain": "mg.example.com", "base_url": url},
    ProviderType.SES: lambda url: {
        "region": "eu-west-1", "access_key_id": "AKIDEXAMPLE",
        "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "base_url": url,
    },
    ProviderType.POSTMARK: lambda url: {"server_token": "pm-secret", "base_url": url},
}
SUCCESS = {
    ProviderType.SENDGRID: httpserver.Answer(202, b""),
    ProviderType.MAILGUN: httpserver.Answer(200, {"id": "<1@mg>", "message": "Queued. Thank you."}),
    ProviderType.SES: httpserver.Answer(200, {"MessageId": "0102-abc"}),
    ProviderType.POSTMARK: httpserver.Answer(200, {"ErrorCode": 0, "Message": "OK", "MessageID": "x"}),
}
REFUSAL = {
    ProviderType.SENDGRID: httpserver.Answer(400, {"errors": [{"message": "The from address does not match a verified Sender Identity", "field": "from"}]}),
    ProviderType.MAILGUN: httpserver.Answer(400, {"message": "to parameter is not a valid address"}),
    ProviderType.SES: httpserver.Answer(400, {"message": "Email address is not verified."}, (("x-amzn-ErrorType", "MessageRejected:http://internal"),)),
    ProviderType.POSTMARK: httpserver.Answer(422, {"ErrorCode": 406, "Message": "You tried to send to a recipient that has been marked as inactive."}),
}
REFUSAL_WORDS = {
    ProviderType.SENDGRID: "verified Sender Identity",
    ProviderType.MAILGUN: "not a valid address",
    ProviderType.SES: "MessageRejected: Email address is not verified.",
    ProviderType.POSTMARK: "marked as inactive",
}


async def deliver(type: ProviderType, answers: list[httpserver.Answer], *, timeout: float = 2.0,
                  raw: bytes = RAW, rcpt: tuple[str, ...] = RCPT) -> tuple[providers.Result, httpserver.HttpServer]:
    async with trio.open_nursery() as nursery:
        server = await httpserver.start(nursery, answers=answers)
        async with httpx.AsyncClient(timeout=timeout) as http:
            driver = providers.build(provider(type, CONFIGS[type](server.url)), context(http))
            result = await driver.deliver(envelope(raw, rcpt))
        nursery.cancel_scope.cancel()
    return result, server


# ---------------------------------------------------------------- request shapes


def form_fields(content_type: str, body: bytes) -> dict[str, list[bytes]]:
    """Split multipart/form-data by hand, so no parser can reinterpret the parts."""
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    fields: dict[str, list[bytes]] = {}
    for chunk in body.split(b"--" + boundary)[1:-1]:
        head, _, content = chunk[2:].partition(b"\r\n\r\n")
        name = head.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
        fields.setdefault(name, []).append(content[:-2])  # the CRLF before the next boundary
    return fields



async def test_sendgrid_request_follows_v3_mail_send() -> None:
    result, server = await deliver(ProviderType.SENDGRID, [SUCCESS[ProviderType.SENDGRID]])
    assert result.verdict is Verdict.DELIVERED
    assert result.recipients_with(Verdict.DELIVERED) == RCPT
    [request] = server.requests
    assert (request.method, request.target) == ("POST", "/v3/mail/send")
    assert request.headers["authorization"] == "Bearer SG.secret"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    # Envelope is authoritative: exactly the three envelope recipients, sorted by the
    # headers that show them; nobody@ (header only) is not added; dave@ stays hidden.
    assert body["personalizations"] == [{
        "to": [{"email": "bob@example.net", "name": "Bob"}],
        "cc": [{"email": "carol@example.org"}],
        "bcc": [{"email": "dave@example.com"}],
    }]
    assert body["from"] == {"email": "alice@example.com", "name": "Alice Sender"}
    assert body["reply_to_list"] == [{"email": "replies@example.com"}]
    assert body["subject"] == "Quarterly report"
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert body["content"][0]["value"].strip() == "Hello Bob"
    [attachment] = body["attachments"]
    assert attachment["filename"] == "report.pdf" and attachment["type"] == "application/pdf"
    assert base64.b64decode(attachment["content"]) == b"%PDF-1.4\n"
    assert body["headers"] == {"Message-ID": "<q1@relay.test>", "X-Campaign": "spring"}
    assert request.body.count(b"dave@example.com") == 1  # only in bcc, no header names him


async def test_sendgrid_without_visible_to_gives_each_recipient_their_own_personalization() -> None:
    raw = b"From: a@example.com\r\nTo: list@example.com\r\nSubject: s\r\n\r\nbody\r\n"
    _, server = await deliver(ProviderType.SENDGRID, [SUCCESS[ProviderType.SENDGRID]],
                              raw=raw, rcpt=("x@example.net", "y@example.net"))
    body = server.requests[0].json()
    assert body["personalizations"] == [
        {"to": [{"email": "x@example.net"}]}, {"to": [{"email": "y@example.net"}]},
    ]


async def test_mailgun_posts_the_queued_bytes_to_messages_mime() -> None:
    result, server = await deliver(ProviderType.MAILGUN, [SUCCESS[ProviderType.MAILGUN]])
    assert result.verdict is Verdict.DELIVERED
    [request] = server.requests
    assert (request.method, request.target) == ("POST", "/v3/mg.example.com/messages.mime")
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"api:key-secret").decode()
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    fields = form_fields(request.headers["content-type"], request.body)
    assert fields["to"] == [r.encode() for r in RCPT]
    assert fields["message"] == [RAW]  # the bytes as queued, untouched


async def test_ses_signs_with_sigv4_and_sends_raw_content() -> None:
    result, server = await deliver(ProviderType.SES, [SUCCESS[ProviderType.SES]])
    assert result.verdict is Verdict.DELIVERED
    [request] = server.requests
    assert (request.method, request.target) == ("POST", "/v2/email/outbound-emails")
    auth = request.headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/ses/aws4_request" in auth
    assert "SignedHeaders=" in auth and "host" in auth and "x-amz-date" in auth
    assert len(auth.rsplit("Signature=", 1)[1]) == 64
    assert request.headers["x-amz-date"].endswith("Z")
    body = request.json()
    assert base64.b64decode(body["Content"]["Raw"]["Data"]) == RAW
    assert body["Destination"] == {"ToAddresses": list(RCPT)}
    assert body["FromEmailAddress"] == "bounces@example.com"


async def test_ses_signature_matches_botocore_for_the_same_request() -> None:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    _, server = await deliver(ProviderType.SES, [SUCCESS[ProviderType.SES]])
    [request] = server.requests
    config = CONFIGS[ProviderType.SES](server.url)
    again = AWSRequest(method="POST", url=server.url + "/v2/email/outbound-emails", data=request.body,
                       headers={"Content-Type": "application/json", "X-Amz-Date": request.headers["x-amz-date"]})
    signer = SigV4Auth(Credentials(config["access_key_id"], config["secret_access_key"]), "ses", "eu-west-1")
    again.context["timestamp"] = request.headers["x-amz-date"]
    canonical = signer.canonical_request(again)
    signature = signer.signature(signer.string_to_sign(again, canonical), again)
    assert request.headers["authorization"].endswith("Signature=" + signature)


async def test_postmark_builds_email_json_from_the_parsed_message() -> None:
    result, server = await deliver(ProviderType.POSTMARK, [SUCCESS[ProviderType.POSTMARK]])
    assert result.verdict is Verdict.DELIVERED
    [request] = server.requests
    assert (request.method, request.target) == ("POST", "/email")
    assert request.headers["x-postmark-server-token"] == "pm-secret"
    body = request.json()
    assert body["From"] == "Alice Sender <alice@example.com>"
    assert (body["To"], body["Cc"], body["Bcc"]) == ("Bob <bob@example.net>", "carol@example.org", "dave@example.com")
    assert body["Subject"] == "Quarterly report" and body["MessageStream"] == "outbound"
    assert body["TextBody"].strip() == "Hello Bob" and "<p>Hello Bob</p>" in body["HtmlBody"]
    assert body["ReplyTo"] == "replies@example.com"
    assert {"Name": "X-Campaign", "Value": "spring"} in body["Headers"]
    assert all(h["Name"].lower() not in ("bcc", "received") for h in body["Headers"])
    assert body["Attachments"][0]["Name"] == "report.pdf"


async def test_recipient_limits_split_requests() -> None:
    rcpt = tuple(f"r{i}@example.net" for i in range(51))
    raw = b"From: a@example.com\r\nTo: r0@example.net\r\nSubject: s\r\n\r\nbody\r\n"
    result, server = await deliver(ProviderType.SES, [SUCCESS[ProviderType.SES]], rcpt=rcpt, raw=raw)
    assert result.verdict is Verdict.DELIVERED and len(result.recipients) == 51
    assert [len(r.json()["Destination"]["ToAddresses"]) for r in server.requests] == [50, 1]


# ---------------------------------------------------------------- classification

ALL = list(CONFIGS)


@pytest.mark.parametrize("type", ALL)
async def test_rate_limited_is_temporary(type: ProviderType) -> None:
    result, _ = await deliver(type, [httpserver.Answer(429, {"message": "slow down", "Message": "slow down", "errors": [{"message": "slow down"}]})])
    assert result.verdict is Verdict.TEMPORARY and not result.unreachable
    assert result.response.startswith("429") and "slow down" in result.response


@pytest.mark.parametrize("type", ALL)
async def test_server_error_is_temporary(type: ProviderType) -> None:
    result, _ = await deliver(type, [httpserver.Answer(503, b"upstream overloaded")])
    assert result.verdict is Verdict.TEMPORARY
    assert result.response == "503 Service Unavailable: upstream overloaded"


@pytest.mark.parametrize("type", ALL)
async def test_client_error_is_permanent_with_the_remote_words(type: ProviderType) -> None:
    result, _ = await deliver(type, [REFUSAL[type]])
    assert result.verdict is Verdict.PERMANENT
    assert REFUSAL_WORDS[type] in result.response
    assert {r.verdict for r in result.recipients} == {Verdict.PERMANENT}


@pytest.mark.parametrize("type", ALL)
async def test_refused_credentials_are_temporary(type: ProviderType) -> None:
    result, _ = await deliver(type, [httpserver.Answer(401, {"message": "invalid key"})])
    assert result.verdict is Verdict.TEMPORARY


@pytest.mark.parametrize("type", ALL)
async def test_no_answer_is_a_temporary_timeout(type: ProviderType) -> None:
    result, _ = await deliver(type, [httpserver.Answer(hang=True)], timeout=0.2)
    assert result.verdict is Verdict.TEMPORARY and result.unreachable
    assert "in time" in result.response and "Timeout" in result.response


@pytest.mark.parametrize("type", ALL)
async def test_unreachable_is_temporary(type: ProviderType) -> None:
    with trio.socket.socket() as sock:  # bound, never listening: refused while we try
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        async with httpx.AsyncClient(timeout=1) as http:
            driver = providers.build(provider(type, CONFIGS[type](f"http://127.0.0.1:{port}")), context(http))
            result = await driver.deliver(envelope())
    assert result.verdict is Verdict.TEMPORARY and result.unreachable
    assert result.response.startswith(f"cannot reach 127.0.0.1:{port}: ConnectError")


@pytest.mark.parametrize("type", ALL)
async def test_missing_credentials_name_the_key(type: ProviderType) -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(ProviderConfigError, match=r"config\.\w+ is required"):
            providers.build(provider(type, {}), context(http))


def test_credentials_do_not_show_in_repr() -> None:
    for type, make in CONFIGS.items():
        driver = providers.build(provider(type, make("https://api.example")), context(httpx.AsyncClient()))
        text = repr(driver) + repr(provider(type, make("https://api.example")))
        assert "secret" not in text and "wJalr" not in text
