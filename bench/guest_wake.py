"""What guest mode costs per wake: socket round trips to an external peer, trio.run vs guest.

An SMTP process spends its life waiting for the next command; each time one arrives
while every task waits, the process wakes. Under ``trio.run`` trio's own epoll wakes
it; as the guest of an asyncio loop (``relay.storage.host.run``, how every relay
process runs), trio waits for I/O in a helper thread that wakes the host loop, which
then runs trio's tick. This measures the difference on the smallest workload that
has it: ``--pairs`` trio tasks each doing ``--count`` one-byte round trips over a
socketpair to an echo peer in another process (plain blocking sockets, one thread per
pair), so trio waits for every reply.

Prints round trips/s and this process's CPU time per round trip for each mode:
``trio`` (``trio.run``), ``guest`` (asyncio's loop as host) and ``guest-uvloop``
(uvloop's, when installed). Each mode runs in a fresh interpreter, ``--rounds`` times,
interleaved; the median is printed. Loopback only (a socketpair); bounded by --count.

    python bench/guest_wake.py
    python bench/guest_wake.py --pairs 10 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("trio", "guest", "guest-uvloop")


def echo(sockets: list[socket.socket]) -> None:
    """The peer: answer every read with the same bytes until the other end closes."""

    def serve(sock: socket.socket) -> None:
        while data := sock.recv(100):
            sock.sendall(data)

    threads = [threading.Thread(target=serve, args=(s,)) for s in sockets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def measure(mode: str, pairs: int, count: int) -> dict[str, float]:
    """In this process: start the peer, run the round trips in ``mode``, return figures."""
    import trio

    ends = [socket.socketpair() for _ in range(pairs)]
    peer = os.fork()
    if peer == 0:  # the echo peer
        for mine, _ in ends:
            mine.close()
        echo([theirs for _, theirs in ends])
        os._exit(0)
    for _, theirs in ends:
        theirs.close()

    async def round_trips(sock: socket.socket) -> None:
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
        for _ in range(count):
            await stream.send_all(b"x")
            await stream.receive_some(100)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for mine, _ in ends:
                nursery.start_soon(round_trips, mine)

    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    if mode == "trio":
        trio.run(main)
    else:
        sys.path.insert(0, str(ROOT))
        from relay.storage import host

        os.environ[host.UVLOOP_ENV] = "1" if mode == "guest-uvloop" else "0"
        host.run(main)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    for mine, _ in ends:
        mine.close()
    os.waitpid(peer, 0)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    trips = pairs * count
    return {"per_second": trips / seconds, "cpu_us": 1e6 * cpu / trips}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1, help="concurrent round-trip tasks")
    parser.add_argument("--count", type=int, default=20000, help="round trips per task")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # one child run
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(measure(args.mode, args.pairs, args.count)))
        return
    try:
        import uvloop  # noqa: F401 -- only asking whether it is there
        modes = list(MODES)
    except ImportError:
        modes = ["trio", "guest"]
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for mode in modes:
            out = subprocess.run(
                [sys.executable, __file__, "--mode", mode, "--pairs", str(args.pairs),
                 "--count", str(args.count)],
                check=True, capture_output=True, text=True,
            ).stdout
            runs[mode].append(json.loads(out.strip().splitlines()[-1]))
    print(f"{args.pairs} task(s) x {args.count} round trips, median of {args.rounds} rounds")
    print("| mode | round trips/s | CPU µs per round trip |")
    print("|---|---|---|")
    for mode in modes:
        rate = statistics.median(r["per_second"] for r in runs[mode])
        cpu = statistics.median(r["cpu_us"] for r in runs[mode])
        print(f"| {mode} | {rate:,.0f} | {cpu:.1f} |")


if __name__ == "__main__":
    main()
