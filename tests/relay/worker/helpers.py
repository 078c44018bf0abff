"""Builders shared by the worker tests."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from relay import models
from relay.worker.providers import Envelope

NOW = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)

#: To: and Cc: name two envelope recipients; the third is a Bcc recipient. The Bcc:
#: header a careless client left in must reach no JSON API.
RAW = (
    b"Received: from client.test ([127.0.0.1])\r\n\tby relay.test (relay) with ESMTPSA id q1;\r\n"
    b"\tWed, 01 May 2024 12:00:00 +0000\r\n"
    b"From: Alice Sender <alice@example.com>\r\n"
    b"To: Bob <bob@example.net>, Not Envelope <nobody@example.net>\r\n"
    b"Cc: carol@example.org\r\n"
    b"Bcc: dave@example.com\r\n"
    b"Reply-To: replies@example.com\r\n"
    b"Subject: Quarterly report\r\n"
    b"Message-ID: <q1@relay.test>\r\n"
    b"X-Campaign: spring\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"--outer\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n'
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello Bob\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<p>Hello Bob</p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b"Content-Type: application/pdf\r\n"
    b'Content-Disposition: attachment; filename="report.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--outer--\r\n"
)
RCPT = ("bob@example.net", "carol@example.org", "dave@example.com")


def envelope(raw: bytes = RAW, rcpt_to: tuple[str, ...] = RCPT) -> Envelope:
    return Envelope(uuid.uuid4(), "bounces@example.com", rcpt_to, raw)


def provider(type: models.ProviderType, config: dict[str, Any], name: str = "p") -> models.Provider:
    return models.Provider(
        id=uuid.uuid4(), account_id=uuid.uuid4(), name=name, type=type, config=config,
        enabled=True, created_at=NOW, updated_at=NOW,
    )
