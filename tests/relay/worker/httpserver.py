"""A tiny HTTP/1.1 server on 127.0.0.1 (h11 over trio) that records requests.

Tests script its answers (status, JSON body, or ``hang`` to test timeouts) and then
inspect what the provider sent: method, path, headers, body.
"""

from __future__ import annotations

import functools
import json
import ssl
from collections.abc import Callable
from typing import Any

import attrs
import h11
import trio


@attrs.frozen
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@attrs.frozen
class Answer:
    status: int = 200
    body: Any = attrs.field(factory=dict)
    headers: tuple[tuple[str, str], ...] = ()
    #: Never answer (the client's time limit must fire).
    hang: bool = False
    #: Answer only once this is set (a delivery the test holds in flight).
    release: trio.Event | None = attrs.field(default=None, eq=False)


@attrs.define
class HttpServer:
    port: int = 0
    requests: list[Request] = attrs.field(factory=list)
    answers: list[Answer] = attrs.field(factory=lambda: [Answer()])
    handler: Callable[[Request], Answer] | None = None
    #: Serve HTTPS with this context (the URL is then https://localhost:port).
    ssl_context: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        if self.ssl_context is not None:
            return f"https://localhost:{self.port}"
        return f"http://127.0.0.1:{self.port}"

    def answer(self, request: Request) -> Answer:
        if self.handler is not None:
            return self.handler(request)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    async def _handle(self, stream: Any) -> None:
        conn = h11.Connection(h11.SERVER)
        if self.ssl_context is not None:
            stream = trio.SSLStream(stream, self.ssl_context, server_side=True)
        try:
            while True:
                head = None
                body = b""
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        data = await stream.receive_some(65536)
                        conn.receive_data(data)
                        continue
                    if isinstance(event, h11.Request):
                        head = event
                    elif isinstance(event, h11.Data):
                        body += bytes(event.data)
                    elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                        break
                if head is None:
                    return
                request = Request(
                    method=head.method.decode(),
                    target=head.target.decode(),
                    headers={k.decode().lower(): v.decode() for k, v in head.headers},
                    body=body,
                )
                self.requests.append(request)
                answer = self.answer(request)
                if answer.hang:
                    await trio.sleep_forever()
                if answer.release is not None:
                    await answer.release.wait()
                payload = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
                headers = [("content-type", "application/json"), ("content-length", str(len(payload))),
                           *answer.headers]
                await stream.send_all(conn.send(h11.Response(status_code=answer.status, headers=headers)))
                await stream.send_all(conn.send(h11.Data(data=payload)))
                await stream.send_all(conn.send(h11.EndOfMessage()))
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (h11.RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError,
                h11.LocalProtocolError):
            return
        finally:
            await trio.aclose_forcefully(stream)


async def start(nursery: trio.Nursery, **kwargs: Any) -> HttpServer:
    server = HttpServer(**kwargs)
    listeners = await nursery.start(functools.partial(trio.serve_tcp, server._handle, 0, host="127.0.0.1"))
    server.port = listeners[0].socket.getsockname()[1]
    return server
