"""The seam between hypercorn and the app: every response ends its connection cleanly.

Strategy: hypercorn does its per-connection bookkeeping — recycle the HTTP/1.1
connection for the next request (and restart its keep-alive timer), or close it —
*inside* the ASGI ``send`` call that carries the last body message. That same call
tells the app ``http.disconnect``, and quart-trio answers ``http.disconnect`` by
cancelling the request's nursery, which holds the very task still inside ``send``.
So the bookkeeping is cancelled at its first checkpoint:

- When the request body had not fully arrived by the time the answer went out (a 401,
  404 or 405 sent before the body was read, the body in a later TCP segment than the
  headers), hypercorn must close the connection; the close is cancelled, the socket
  stays open with no request task and no timer, and the next request the client sends
  on it is parsed but never answered: h11 reports ``PAUSED`` (a complete request while
  the previous cycle was never ended) and hypercorn waits for a wake-up that never
  comes. The client hangs until its own timeout.
- Otherwise the connection is recycled but its keep-alive timer is never restarted, so
  idle connections are never closed (``server.KEEP_ALIVE_TIMEOUT`` had no effect).

``ConnectionGuard`` wraps the app for hypercorn and shields the one ``send`` that ends
a response, so the bookkeeping always runs to its end; cancellation reaches the app at
its next checkpoint as before. Nothing is lost by the shield: hypercorn already
shields the socket write itself, so only its in-memory bookkeeping is added.

It also says ``Connection: close`` (RFC 9112 §9.6) on an HTTP/1.x response that starts
before the request body was received in full: hypercorn will close that connection
after the response, and a client told so up front opens a new one instead of sending
its next request into a closing socket. The check errs towards closing (body bytes
may have arrived but not reached the app yet), which costs a reconnect, never a hang.
"""

from __future__ import annotations

from collections.abc import Iterable

import trio
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
    Scope,
)

#: HTTP versions whose responses may carry ``Connection`` (RFC 9113 §8.2.2 forbids it in h2).
_HTTP1 = frozenset({"1.0", "1.1"})


def _declares_body(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"transfer-encoding":
            return True
        if name.lower() == b"content-length" and value.strip() not in (b"", b"0"):
            return True
    return False


class ConnectionGuard:
    """ASGI middleware around the API app; see the module docstring for why."""

    def __init__(self, app: ASGIFramework) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_received = not _declares_body(scope["headers"])

        async def tracked_receive() -> ASGIReceiveEvent:
            nonlocal body_received
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_received = True
            return message

        async def guarded_send(message: ASGISendEvent) -> None:
            if (
                message["type"] == "http.response.start"
                and not body_received
                and scope.get("http_version") in _HTTP1
            ):
                headers = [(n, v) for n, v in message.get("headers", []) if n.lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                # hypercorn recycles or closes the connection inside this call.
                with trio.CancelScope(shield=True):
                    await send(message)
                return
            await send(message)

        await self.app(scope, tracked_receive, guarded_send)
