"""SendGrid: v3 ``POST /v3/mail/send`` with a Bearer API key.

SendGrid has no raw-MIME input, so the JSON is built from the parsed message
(``_mime``; what that loses is listed in ``_mime.LOSSY``). Recipients come from the
envelope only: one personalization carries the envelope recipients that the To: and
Cc: headers show as ``to``/``cc`` and every other one as ``bcc``. When no envelope
recipient appears in To: (all were Bcc, or To: names a list address), each recipient
gets a personalization of their own with only themselves in ``to``, so no one learns
another recipient's address. A request carries at most 1,000 recipients (SendGrid's
documented limit); larger envelopes are sent in several requests.

Config: ``relay.provider_configs.SendGridProviderConfig`` (``api_key``; ``base_url``,
default ``https://api.sendgrid.com``).
A 202 means accepted; errors come back as ``{"errors": [{"message", "field"}]}``.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx

from ... import models
from ...provider_configs import SendGridProviderConfig
from . import _http, _mime
from .base import Envelope, Result, settings

#: SendGrid: "There is a limit of 1000 total recipients (to + cc + bcc) per request."
MAX_RECIPIENTS = 1000


def _words(response: httpx.Response) -> str:
    return _http.json_words(response, "message", "field")


def _address(name: str, address: str) -> dict[str, str]:
    return {"email": address, "name": name} if name else {"email": address}


def body(parts: _mime.Parts, rcpt_to: tuple[str, ...]) -> dict[str, Any]:
    """The mail/send JSON for one chunk of envelope recipients."""
    split = _mime.split_envelope(parts, rcpt_to)
    if split.to:
        personalization: dict[str, Any] = {"to": [_address(*a) for a in split.to]}
        if split.cc:
            personalization["cc"] = [_address(*a) for a in split.cc]
        if split.bcc:
            personalization["bcc"] = [_address(*a) for a in split.bcc]
        personalizations = [personalization]
    else:
        personalizations = [
            {"to": [_address(*a)]} for a in (*split.cc, *split.bcc)
        ]
    content = []
    if parts.text is not None:
        content.append({"type": "text/plain", "value": parts.text or " "})
    if parts.html is not None:
        content.append({"type": "text/html", "value": parts.html or " "})
    if not content:  # SendGrid requires at least one content entry of length >= 1
        content.append({"type": "text/plain", "value": " "})
    data: dict[str, Any] = {
        "personalizations": personalizations,
        "from": _address(parts.from_name, parts.from_address),
        "subject": parts.subject or " ",
        "content": content,
    }
    if parts.reply_to:
        data["reply_to_list"] = [_address(*a) for a in parts.reply_to]
    if parts.headers:
        data["headers"] = {name: value for name, value in parts.headers}
    if parts.attachments:
        data["attachments"] = [
            {
                "content": base64.b64encode(a.content).decode("ascii"),
                "filename": a.filename,
                "type": a.content_type,
                "disposition": "inline" if a.inline else "attachment",
                **({"content_id": a.content_id} if a.content_id else {}),
            }
            for a in parts.attachments
        ]
    return data


class SendGrid:
    def __init__(self, provider: models.Provider, client: httpx.AsyncClient) -> None:
        config = settings(provider, SendGridProviderConfig)
        self._api_key = config.api_key
        self._url = _http.base_url(config.base_url, "https://api.sendgrid.com") + "/v3/mail/send"
        self._client = client

    def __repr__(self) -> str:
        return f"SendGrid({self._url!r})"

    async def deliver(self, envelope: Envelope) -> Result:
        parts = _mime.parse(envelope.raw, envelope.mail_from)
        results = []
        for chunk in _mime.chunks(envelope.rcpt_to, MAX_RECIPIENTS):
            results.append(await _http.post(
                self._client, self._url, chunk, _words,
                json=body(parts, chunk),
                headers={"Authorization": f"Bearer {self._api_key}"},
            ))
        return Result.combine(results)

    async def aclose(self) -> None:
        pass
