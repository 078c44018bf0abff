"""Serve the API with hypercorn's trio worker on ``api.listen``.

``serve_api`` reports readiness through ``task_status.started(ApiListener(...))`` only once
the socket is bound and listening, so ``await nursery.start(serve_api, runtime)``
returns the real port even for ``api.listen = "127.0.0.1:0"``. It stops when
cancelled (connections are dropped) or, more gently, when ``shutdown`` is set:
hypercorn then stops accepting and gives requests in flight ``GRACEFUL_TIMEOUT``
seconds to finish. The app is served through ``asgi.ConnectionGuard``, without which
hypercorn's end-of-response bookkeeping is cancelled by quart-trio and a keep-alive
connection can hang (see that module).
"""

from __future__ import annotations

import functools
import logging
import socket
from urllib.parse import urlsplit

import attrs
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from ..config import parse_listen
from ..logging import get_logger
from ..ports import bind_reuse_port
from ..reload import Reloader
from ..runtime import Runtime
from .app import create_app
from .app import reload as reload_app
from .asgi import ConnectionGuard

log = get_logger("relay.api")

#: Seconds requests in flight get after ``shutdown`` is set.
GRACEFUL_TIMEOUT = 10.0
#: Seconds an idle keep-alive connection is kept open.
KEEP_ALIVE_TIMEOUT = 30.0
#: Bytes of request line and headers hypercorn buffers (h11's bound).
MAX_HEADER_BYTES = 16 * 1024


@attrs.frozen
class ApiListener:
    """Where the API listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def hypercorn_config(listen: str, *, shared: socket.socket | None = None) -> HypercornConfig:
    """hypercorn's settings for ``listen``; with ``shared``, serve that bound socket
    (``SO_REUSEPORT``, one of several processes: ``relay.supervisor``) instead."""
    host, port = parse_listen(listen)
    config = HypercornConfig()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    if shared is not None:
        config.bind = [f"fd://{shared.fileno()}"]
    # relay.api logs one line per request itself (without keys); hypercorn's own
    # access log would duplicate it.
    config.accesslog = None
    config.errorlog = logging.getLogger("relay.api.hypercorn")
    config.graceful_timeout = GRACEFUL_TIMEOUT
    config.keep_alive_timeout = KEEP_ALIVE_TIMEOUT
    config.h11_max_incomplete_size = MAX_HEADER_BYTES
    config.include_server_header = False
    return config


def _bound(binds: list[str]) -> ApiListener:
    parts = urlsplit(binds[0])
    return ApiListener(host=parts.hostname or "", port=parts.port or 0)


async def serve_api(
    runtime: Runtime,
    *,
    shutdown: trio.Event | None = None,
    reuse_port: bool = False,
    reloader: Reloader | None = None,
    task_status: trio.TaskStatus[ApiListener] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the admin API until cancelled or until ``shutdown`` is set.

    Raises:
        OSError: the address in ``api.listen`` cannot be bound.
    """
    quart_app = create_app(runtime)
    if reloader is not None:
        reloader.register("api", functools.partial(reload_app, quart_app))
    app = ConnectionGuard(quart_app)
    shared = bind_reuse_port(*parse_listen(runtime.config.api.listen)) if reuse_port else None
    config = hypercorn_config(runtime.config.api.listen, shared=shared)

    async def started(*, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        await serve(
            app, config,
            shutdown_trigger=shutdown.wait if shutdown is not None else None,
            task_status=task_status,
        )

    try:
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(started)
            bound = _bound(binds)
            log.info("api listening", url=bound.url, console=bound.url + "/console/")
            task_status.started(bound)
    except BaseExceptionGroup as group:
        # hypercorn binds inside its nurseries; a bind failure is one OSError, and the
        # caller (``relay api``) should see it as one, to print a one-line error.
        leaf = _single_leaf(group)
        if isinstance(leaf, OSError):
            raise leaf from None
        raise
    finally:
        if shared is not None:
            shared.detach()  # hypercorn's socket object on the same descriptor closes it


def _single_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        if len(error.exceptions) != 1:
            return None
        error = error.exceptions[0]
    return error
