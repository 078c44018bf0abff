"""Postmark: ``POST /email`` with the ``X-Postmark-Server-Token`` header.

Postmark has no raw-MIME endpoint, so the JSON (From, To, Cc, Bcc, Subject,
TextBody, HtmlBody, ReplyTo, Headers, Attachments, MessageStream) is built from the
parsed message; ``_mime.LOSSY`` says what that loses. Recipients come from the
envelope only, sorted into To/Cc/Bcc by the headers; when no envelope recipient is
in To: each recipient gets a message of their own addressed to them alone (To is
required by Postmark, and putting a Bcc recipient in a shared To would reveal them).
Postmark allows 50 recipients (To + Cc + Bcc) per message; larger envelopes are sent
in several requests.

Config: ``relay.provider_configs.PostmarkProviderConfig`` (``server_token``;
``message_stream``, default ``outbound``; ``base_url``, default
``https://api.postmarkapp.com``). Success is 200 with
``ErrorCode`` 0; refusals are 422 with ``{"ErrorCode", "Message"}``.

Hard bounces (``RecipientResult.hard_bounce``, for the suppression list) are the
refusals about an address: ``ErrorCode`` 406, an inactive recipient (Postmark saw it
hard-bounce or complain; the recipients its ``Message`` names after "Found inactive
addresses:", or every recipient of the request when it names none: "have all been
marked as inactive"), and 300, an invalid email request, only for the recipients its
``Message`` names (300 also covers a bad From or a missing body). Other bounces
Postmark reports later, by its own webhooks, which relay does not read.
"""

from __future__ import annotations

import base64
import email.utils
import re
from typing import Any

import attrs
import httpx

from ... import models
from ...provider_configs import PostmarkProviderConfig
from . import _http, _mime
from .base import Envelope, Result, Verdict, settings

#: Postmark: at most 50 recipients across To, Cc and Bcc per message.
MAX_RECIPIENTS = 50


def _words(response: httpx.Response) -> str:
    return _http.json_words(response, "ErrorCode", "Message")


def _join(addresses: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(_mime.display(*a) for a in addresses)


def bodies(parts: _mime.Parts, rcpt_to: tuple[str, ...], stream: str) -> list[dict[str, Any]]:
    """The /email JSON documents for one chunk of envelope recipients."""
    split = _mime.split_envelope(parts, rcpt_to)
    if split.to:
        addressed = [(split.to, split.cc, split.bcc)]
    else:
        addressed = [((a,), (), ()) for a in (*split.cc, *split.bcc)]
    common: dict[str, Any] = {
        "From": _mime.display(parts.from_name, parts.from_address),
        "Subject": parts.subject,
        "MessageStream": stream,
    }
    if parts.text is not None:
        common["TextBody"] = parts.text
    if parts.html is not None:
        common["HtmlBody"] = parts.html
    if parts.reply_to:
        common["ReplyTo"] = _join(parts.reply_to)
    if parts.headers:
        common["Headers"] = [{"Name": n, "Value": v} for n, v in parts.headers]
    if parts.attachments:
        common["Attachments"] = [
            {
                "Name": a.filename,
                "Content": base64.b64encode(a.content).decode("ascii"),
                "ContentType": a.content_type,
                **({"ContentID": f"cid:{a.content_id}"} if a.content_id else {}),
            }
            for a in parts.attachments
        ]
    documents = []
    for to, cc, bcc in addressed:
        document = {**common, "To": _join(to)}
        if cc:
            document["Cc"] = _join(cc)
        if bcc:
            document["Bcc"] = _join(bcc)
        documents.append(document)
    return documents


def _recipients(document: dict[str, Any], rcpt_to: tuple[str, ...]) -> tuple[str, ...]:
    """The envelope recipients one document addresses (for per-recipient results)."""
    fields = [document[f] for f in ("To", "Cc", "Bcc") if f in document]
    named = {a.lower() for _, a in email.utils.getaddresses(fields)}
    return tuple(dict.fromkeys(r for r in rcpt_to if r.lower() in named))


#: Postmark's ErrorCodes about an address: inactive recipient, invalid email request.
INACTIVE_RECIPIENT = 406
INVALID_EMAIL = 300
_INACTIVE = re.compile(r"Found inactive addresses:\s*(.+?)\.(?:\s|$)")


def _named(address: str, text: str) -> bool:
    """``address`` appears in ``text`` as a whole address, in any case."""
    pattern = r"(?<![\w.+-])" + re.escape(address) + r"(?![\w.-])"
    return re.search(pattern, text, re.IGNORECASE) is not None


def hard_bounces(result: Result, response: httpx.Response | None) -> Result:
    """``result`` with ``hard_bounce`` set on the recipients a 422 refused because of
    their address (see the module docstring)."""
    if response is None or response.status_code != 422:
        return result
    try:
        body = response.json()
    except ValueError:
        return result
    if not isinstance(body, dict):
        return result
    code, message = body.get("ErrorCode"), str(body.get("Message") or "")
    if code == INACTIVE_RECIPIENT:
        found = _INACTIVE.search(message)
        listed = found.group(1) if found else None

        def bounced(address: str) -> bool:
            return listed is None or _named(address, listed)
    elif code == INVALID_EMAIL:
        def bounced(address: str) -> bool:
            return _named(address, message)
    else:
        return result
    return attrs.evolve(result, recipients=tuple(
        attrs.evolve(r, hard_bounce=True)
        if r.verdict is Verdict.PERMANENT and bounced(r.recipient) else r
        for r in result.recipients
    ))


class Postmark:
    def __init__(self, provider: models.Provider, client: httpx.AsyncClient) -> None:
        config = settings(provider, PostmarkProviderConfig)
        self._token = config.server_token
        self._stream = config.message_stream
        self._url = _http.base_url(config.base_url, "https://api.postmarkapp.com") + "/email"
        self._client = client

    def __repr__(self) -> str:
        return f"Postmark({self._url!r})"

    async def deliver(self, envelope: Envelope) -> Result:
        parts = _mime.parse(envelope.raw, envelope.mail_from)
        results = []
        for chunk in _mime.chunks(envelope.rcpt_to, MAX_RECIPIENTS):
            for document in bodies(parts, chunk, self._stream):
                answered: list[httpx.Response] = []

                def words(response: httpx.Response, answered: list[httpx.Response] = answered) -> str:
                    answered.append(response)  # kept for hard_bounces
                    return _words(response)

                result = await _http.post(
                    self._client, self._url, _recipients(document, chunk), words,
                    json=document,
                    headers={"X-Postmark-Server-Token": self._token, "Accept": "application/json"},
                )
                results.append(hard_bounces(result, answered[0] if answered else None))
        return Result.combine(results)

    async def aclose(self) -> None:
        pass
