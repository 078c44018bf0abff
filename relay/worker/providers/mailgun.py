"""Mailgun: ``POST /v3/{domain}/messages.mime``, the raw-MIME endpoint.

The message goes as queued, as the ``message`` file part of a multipart/form-data
request; the envelope recipients go as ``to`` fields, which Mailgun uses as the
recipient list without touching the headers, so Bcc recipients are delivered and
never shown. Authentication is HTTP Basic with user ``api`` and the API key.
Mailgun accepts up to 1,000 recipients per request; larger envelopes are split.

Config: ``relay.provider_configs.MailgunProviderConfig`` (``api_key``, ``domain``;
``region``, ``us`` or ``eu`` for domains in Mailgun's EU region; ``base_url``, which
overrides the region's endpoint).
Success is 200 ``{"id", "message": "Queued. Thank you."}``; errors carry ``message``.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx

from ... import models
from ...provider_configs import MailgunProviderConfig
from . import _http, _mime
from .base import Envelope, Result, settings

MAX_RECIPIENTS = 1000
#: Mailgun serves each domain from the region it was created in.
REGION_ENDPOINTS = {"us": "https://api.mailgun.net", "eu": "https://api.eu.mailgun.net"}


def _words(response: httpx.Response) -> str:
    return _http.json_words(response, "message")


class Mailgun:
    def __init__(self, provider: models.Provider, client: httpx.AsyncClient) -> None:
        config = settings(provider, MailgunProviderConfig)
        base = _http.base_url(config.base_url, REGION_ENDPOINTS[config.region])
        self._url = f"{base}/v3/{quote(config.domain, safe='')}/messages.mime"
        self._auth = httpx.BasicAuth("api", config.api_key)
        self._client = client

    def __repr__(self) -> str:
        return f"Mailgun({self._url!r})"

    async def deliver(self, envelope: Envelope) -> Result:
        results = []
        for chunk in _mime.chunks(envelope.rcpt_to, MAX_RECIPIENTS):
            results.append(await _http.post(
                self._client, self._url, chunk, _words,
                auth=self._auth,
                data={"to": list(chunk)},
                files={"message": ("message.eml", envelope.raw, "message/rfc822")},
            ))
        return Result.combine(results)

    async def aclose(self) -> None:
        pass
