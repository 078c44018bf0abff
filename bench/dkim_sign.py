"""DKIM signing cost: time per signature and memory held while signing.

Run: ``python bench/dkim_sign.py`` (from the repository root). Pure CPU, one core,
no sockets: ``relay.dkim.sign_message`` (what the SMTP service runs in a worker
thread) on a 2 kB and a 5 MB message (78-octet lines) with an RSA-2048 and an
Ed25519 key, and with both (a rotation). Reported per case: the median of a few
runs in milliseconds, and the peak of memory allocated while signing (tracemalloc)
as a multiple of the message size — the figure behind
``relay.smtp.dkim.SIGNING_COPIES``.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from relay import dkim

HEADER = (
    b"Received: from client.test ([127.0.0.1])\r\n\tby relay.test (relay) with ESMTPSA id x;\r\n"
    b"\tFri, 04 Dec 2026 02:00:00 +0000\r\n"
    b"From: Alice <alice@example.com>\r\nTo: Bob <bob@example.net>\r\nSubject: bench\r\n"
    b"Date: Fri, 04 Dec 2026 02:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
)


def message(size: int) -> bytes:
    line = b"x" * 76 + b"\r\n"
    return HEADER + line * max(1, (size - len(HEADER)) // len(line))


def key(algorithm: str, selector: str) -> dkim.SigningKey:
    return dkim.SigningKey("example.com", selector, algorithm, dkim.generate(algorithm).private)


def main() -> None:
    rsa, ed = key(dkim.RSA_SHA256, "rsa"), key(dkim.ED25519_SHA256, "ed")
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores")
    print("| message | keys | ms (median) | peak memory / message size |")
    print("| --- | --- | --- | --- |")
    for size, runs in ((2_000, 50), (5_000_000, 3)):
        raw = message(size)
        for name, keys in (("rsa-2048", [rsa]), ("ed25519", [ed]), ("both", [rsa, ed])):
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                dkim.sign_message(raw, keys)
                times.append((time.perf_counter() - started) * 1000)
            tracemalloc.start()
            dkim.sign_message(raw, keys)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"| {len(raw):,} B | {name} | {statistics.median(times):.2f} | {peak / len(raw):.2f} |")


if __name__ == "__main__":
    main()
