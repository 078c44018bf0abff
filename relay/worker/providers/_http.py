"""What the HTTP providers share: one status-code policy and one error mapping.

Strategy: every HTTP provider posts one request per message (or per chunk of
recipients) through the worker's shared ``httpx.AsyncClient`` and hands the response
to ``answer``, so "which status means retry" is decided in exactly one place:

* 2xx: delivered.
* 429 and 5xx (and 408): temporary: the provider is busy or broken, not the message.
* 401 and 403: temporary too: our credentials were refused, which says nothing
  about the message; the breaker then opens and failover moves mail to the next
  provider instead of failing it (the issue's "4xx is permanent" would otherwise
  bounce every message over one expired API key).
* any other 4xx: permanent: the provider refused this message.

Transport failures (connect errors, resets, httpx's own timeouts) are temporary and
marked ``unreachable``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from .base import Result, Verdict, clip

#: Status codes that say "not now" rather than "not this message".
_TEMPORARY_4XX = frozenset({401, 403, 408, 429})


def classify(status: int) -> Verdict:
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status >= 500 or status in _TEMPORARY_4XX or status < 400:
        return Verdict.TEMPORARY
    return Verdict.PERMANENT


def json_words(response: httpx.Response, *keys: str) -> str:
    """The error text a JSON API put under one of ``keys`` (nested lists are joined)."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key in keys:
                if key in value and isinstance(value[key], (str, int)):
                    found.append(str(value[key]))
            for item in value.values():
                if isinstance(item, (dict, list)):
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(body)
    return "; ".join(found) if found else str(response.text)


def answer(
    response: httpx.Response,
    rcpt_to: tuple[str, ...],
    words: Callable[[httpx.Response], str],
) -> Result:
    verdict = classify(response.status_code)
    text = words(response).strip()
    phrase = response.reason_phrase or httpx.codes.get_reason_phrase(response.status_code)
    line = f"{response.status_code} {phrase}".strip()
    return Result.whole(verdict, clip(f"{line}: {text}" if text else line), rcpt_to)


async def post(
    client: httpx.AsyncClient,
    url: str,
    rcpt_to: tuple[str, ...],
    words: Callable[[httpx.Response], str],
    **request: Any,
) -> Result:
    """POST and turn whatever happens into a ``Result``; never raises for I/O.

    On cancellation httpx closes the connection and the cancellation propagates.
    """
    try:
        response = await client.post(url, **request)
    except httpx.TimeoutException as exc:
        return Result.whole(
            Verdict.TEMPORARY, f"no answer from {_host(url)} in time ({type(exc).__name__})",
            rcpt_to, unreachable=True,
        )
    except httpx.TransportError as exc:
        return Result.whole(
            Verdict.TEMPORARY, clip(f"cannot reach {_host(url)}: {type(exc).__name__}: {exc}"),
            rcpt_to, unreachable=True,
        )
    return answer(response, rcpt_to, words)


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def base_url(configured: str | None, default: str) -> str:
    """``config.base_url`` (tests and regional endpoints; checked by its config class)
    or the provider's public endpoint, without a trailing slash."""
    return (configured or default).rstrip("/")
