"""The one place a relay process starts its event loops: asyncio hosts, trio is the guest.

Strategy: asyncpg is asyncio-only and fastest on a real asyncio loop, while every line
of relay outside ``relay/storage`` is trio. ``run(async_fn, *args)`` is ``trio.run``
with the roles split: it creates an asyncio loop (uvloop's when ``relay[uvloop]`` is
installed, see ``new_host_loop``), starts trio on it with
``trio.lowlevel.start_guest_run`` and runs that loop until trio is done. Trio's ticks
are callbacks of the host loop, on the host loop's thread, so from trio code
``asyncio.get_running_loop()`` is the host loop and ``loop.create_task`` is a plain,
non-threadsafe call (see ``relay.storage._bridge``). Trio's I/O waits happen in a
helper thread of trio's, which wakes the host with ``call_soon_threadsafe``.

Signals: trio keeps its own signal handling. The plain asyncio loop never calls
``signal.set_wakeup_fd`` (we never use ``loop.add_signal_handler`` or
``asyncio.run``), so trio installs its wake-up socket and ``trio.open_signal_receiver``
(``relay.composition.watch_signals``) and trio's KeyboardInterrupt delivery work as under
``trio.run``. uvloop does install a wake-up fd of its own while it runs; we tell trio
so (``host_uses_signal_set_wakeup_fd``) and uvloop's wake-up makes the main thread run
the Python-level handlers that trio installed.

The test suite runs every trio test through ``run`` too (``tests/conftest.py``), with
pytest-trio's clock and instruments passed on.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, TypeVarTuple

import outcome
import trio

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

#: Set to ``0`` to keep the plain asyncio loop even when uvloop is installed.
UVLOOP_ENV = "RELAY_UVLOOP"


def _uvloop_module() -> Any:
    if os.environ.get(UVLOOP_ENV, "1") == "0":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop


def new_host_loop() -> asyncio.AbstractEventLoop:
    """A new host loop: uvloop's when it is installed (and not disabled), else asyncio's."""
    uvloop = _uvloop_module()
    if uvloop is not None:
        return uvloop.new_event_loop()  # type: ignore[no-any-return]
    return asyncio.new_event_loop()


def host_loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``"uvloop"`` or ``"asyncio"``, for logs and benchmarks."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def running_loop_name() -> str:
    """The host loop this trio run is the guest of, by ``host_loop_name`` (called from
    trio code inside ``run``: its ticks run on the host loop)."""
    return host_loop_name(asyncio.get_running_loop())


def run(
    async_fn: Callable[[*Ts], Awaitable[T]],
    *args: *Ts,
    clock: trio.abc.Clock | None = None,
    instruments: Sequence[trio.abc.Instrument] = (),
    loop: asyncio.AbstractEventLoop | None = None,
) -> T:
    """Run ``async_fn(*args)`` in trio, as a guest of a new asyncio host loop.

    The signature is ``trio.run``'s (``clock`` and ``instruments`` included) so pytest-trio
    can use it as its runner.

    Args:
        loop: the host loop to use (closed afterwards); a new one from ``new_host_loop``
            when omitted.

    Returns:
        Whatever ``async_fn`` returned; whatever it raised propagates, as from ``trio.run``.

    Raises:
        RuntimeError: an asyncio loop is already running in this thread.
    """
    # Over 40 lines only by its docstring: the body is trio.run's sequence, start to cleanup.
    if loop is None:
        loop = new_host_loop()
    uses_wakeup_fd = host_loop_name(loop) == "uvloop"
    done: list[outcome.Outcome[T]] = []

    def finished(result: outcome.Outcome[T]) -> None:
        done.append(result)
        loop.stop()

    try:
        asyncio.set_event_loop(loop)
        trio.lowlevel.start_guest_run(
            async_fn,
            *args,
            run_sync_soon_threadsafe=loop.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=loop.call_soon,
            done_callback=finished,
            host_uses_signal_set_wakeup_fd=uses_wakeup_fd,
            clock=clock,
            instruments=instruments,
        )
        loop.run_forever()
        if not done:  # pragma: no cover - only loop.stop() from elsewhere gets here
            raise RuntimeError("the host loop stopped before trio finished")
        _shut_down_host(loop)
    finally:
        # When the host loop itself was interrupted (a KeyboardInterrupt outside trio),
        # trio never finished: the loop is closed as it is and the exception propagates.
        asyncio.set_event_loop(None)
        loop.close()
    return done[0].unwrap()


def _shut_down_host(loop: asyncio.AbstractEventLoop) -> None:
    """Trio is done; like asyncio.run, cancel and await what it left on the host."""
    _cancel_leftover_tasks(loop)
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.run_until_complete(loop.shutdown_default_executor())


def _cancel_leftover_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Like ``asyncio.run``: whatever trio left behind on the host is cancelled and awaited."""
    tasks = asyncio.all_tasks(loop)
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
