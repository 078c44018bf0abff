"""Amazon SES: API v2 ``SendEmail`` (``POST /v2/email/outbound-emails``) with raw content.

The message bytes go as queued, base64-encoded in ``Content.Raw.Data``; the envelope
recipients go in ``Destination.ToAddresses``. For raw content SES sends to the
Destination addresses and leaves the headers as they are, so Bcc recipients are
delivered and never shown. ``FromEmailAddress`` is the envelope sender (omitted for
the null reverse path). SES allows 50 recipients per message; larger envelopes are
split.

Requests are signed with Signature Version 4 by botocore's own signer (``SigV4Auth``
over an ``AWSRequest``, signing name ``ses``); we never compute signatures ourselves.

Config: ``relay.provider_configs.SesProviderConfig`` (``region``, ``access_key_id``,
``secret_access_key``; ``session_token`` and ``configuration_set``; ``base_url``,
default ``https://email.{region}.amazonaws.com``). Errors carry ``message`` and the
``x-amzn-ErrorType`` header.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ... import models
from ...provider_configs import SesProviderConfig
from . import _http, _mime
from .base import Envelope, Result, settings

#: SES: "The combined number of To:, CC: and BCC: email addresses cannot exceed 50."
MAX_RECIPIENTS = 50
SIGNING_NAME = "ses"


def _words(response: httpx.Response) -> str:
    kind = response.headers.get("x-amzn-ErrorType", "").split(":")[0]
    text = _http.json_words(response, "message", "Message")
    return f"{kind}: {text}" if kind else text


def body(envelope: Envelope, rcpt_to: tuple[str, ...], configuration_set: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "Destination": {"ToAddresses": list(rcpt_to)},
        "Content": {"Raw": {"Data": base64.b64encode(envelope.raw).decode("ascii")}},
    }
    if envelope.mail_from:
        data["FromEmailAddress"] = envelope.mail_from
    if configuration_set:
        data["ConfigurationSetName"] = configuration_set
    return data


class Ses:
    def __init__(self, provider: models.Provider, client: httpx.AsyncClient) -> None:
        config = settings(provider, SesProviderConfig)
        self._region = config.region
        self._credentials = Credentials(config.access_key_id, config.secret_access_key, config.session_token)
        self._configuration_set = config.configuration_set
        base = _http.base_url(config.base_url, f"https://email.{self._region}.amazonaws.com")
        self._url = f"{base}/v2/email/outbound-emails"
        self._client = client

    def __repr__(self) -> str:
        return f"Ses({self._url!r}, region={self._region!r})"

    def sign(self, content: bytes) -> dict[str, str]:
        """Headers for one signed POST of ``content`` (X-Amz-Date, Authorization, …)."""
        request = AWSRequest(
            method="POST", url=self._url, data=content,
            headers={"Content-Type": "application/json"},
        )
        SigV4Auth(self._credentials, SIGNING_NAME, self._region).add_auth(request)
        return dict(request.headers.items())

    async def deliver(self, envelope: Envelope) -> Result:
        results = []
        for chunk in _mime.chunks(envelope.rcpt_to, MAX_RECIPIENTS):
            content = json.dumps(body(envelope, chunk, self._configuration_set)).encode()
            results.append(await _http.post(
                self._client, self._url, chunk, _words,
                content=content, headers=self.sign(content),
            ))
        return Result.combine(results)

    async def aclose(self) -> None:
        pass
