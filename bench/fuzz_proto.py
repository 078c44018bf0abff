"""Fuzz proto: ``ServerConnection`` with client bytes, ``ClientConnection`` with server bytes.

Run from the repository root:

* ``python bench/fuzz_proto.py --runs 1000000 --seed 1`` — the pure-Python mutational
  loop of ``tests/proto/fuzz.py`` (deterministic for a seed; an input is one chunk of a
  seed session, see that module's docstring). ``--time 300`` bounds it by seconds.
* ``python bench/fuzz_proto.py --atheris --time 300`` — coverage-guided with atheris
  (``pip install atheris``, or the ``fuzz`` extra) on the same harness; an input is a
  whole session in the format of ``fuzz.one_input``. Extra libFuzzer flags may follow
  ``--`` (``-- -jobs=2 -workers=2``).
* ``python bench/fuzz_proto.py --replay FILE...`` — run saved inputs whole, byte at a
  time and in random pieces, printing each result.
* ``python bench/fuzz_proto.py --minimize FILE`` — shrink a crashing input (chunks,
  then bytes) while it still crashes the same way; prints the result, saves nothing.

Both fuzzing modes print inputs/s and the distinct crashes found, and save each
crashing input as ``tests/proto/fuzz_corpus/crash-<sha1>``, which ``test_fuzz.py``
replays from then on. The invariant: every input parses or raises
``RemoteProtocolError``; anything else (``LocalProtocolError`` from sending a reply the
harness was entitled to send, ``ValueError``, a failed harness check) is a crash.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "proto"))


def mutational(runs: int, seed: int, seconds: float | None, client_share: float) -> int:
    import fuzz

    fuzzer = fuzz.Fuzzer(seed=seed, client_share=client_share)
    stats = fuzzer.stats
    start = last = time.perf_counter()
    cpu = time.process_time()
    saved: set[str] = set()
    while stats.inputs < runs and (seconds is None or time.perf_counter() - start < seconds):
        fuzzer.session()
        for signature, crash in stats.crashes.items():
            if signature not in saved:
                saved.add(signature)
                path = fuzz.save(crash)
                print(f"CRASH {signature}: {crash}\n  saved {path.relative_to(ROOT)} ({len(crash.data)} octets)")
                traceback.print_exception(crash.error)
        now = time.perf_counter()
        if now - last > 10:
            last = now
            print(f"  {stats.inputs:,} inputs, {stats.inputs / (now - start):,.0f}/s, {len(stats.crashes)} crashes")
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    print(f"{stats.inputs:,} inputs ({stats.mutated:,} mutated) in {stats.sessions:,} sessions "
          f"({stats.sessions - stats.server_sessions:,} client side), seed {seed}")
    print(f"{wall:.1f} s: {stats.inputs / wall:,.0f} inputs/s ({stats.inputs / cpu:,.0f}/s of CPU time); "
          f"{len(stats.crashes)} distinct crashes")
    for signature, crash in stats.crashes.items():
        print(f"  {signature}: {crash}")
    return 1 if stats.crashes else 0


def _escaped(token: bytes) -> str:
    """A libFuzzer dictionary entry: every octet as \\xNN."""
    return "".join(f"\\x{octet:02x}" for octet in token)


def with_atheris(seconds: float | None, runs: int, extra: list[str]) -> int:
    try:
        import atheris
    except ImportError:
        print("atheris is not installed: pip install atheris (or the project's `fuzz` extra)", file=sys.stderr)
        return 2
    with atheris.instrument_imports(include=["proto"]):
        import proto  # noqa: F401 - instrumented for coverage guidance
    import fuzz

    corpus = Path(tempfile.mkdtemp(prefix="proto-fuzz-"))
    for i, seed in enumerate(fuzz.all_seeds()):
        (corpus / f"seed-{i:03d}").write_bytes(seed.data)
    for path in sorted(fuzz.CORPUS.glob("*")):
        (corpus / path.name).write_bytes(path.read_bytes())
    dictionary = corpus.parent / (corpus.name + ".dict")
    tokens = (*fuzz.DICTIONARY, fuzz.HANDSHAKE)
    dictionary.write_text("".join(f'"{_escaped(token)}"\n' for token in tokens))
    fuzz.CORPUS.mkdir(exist_ok=True)
    args = [
        sys.argv[0],
        str(corpus),
        f"-artifact_prefix={fuzz.CORPUS}/",
        f"-dict={dictionary}",
        "-max_len=16384",
        "-print_final_stats=1",
        *([f"-max_total_time={int(seconds)}"] if seconds else []),
        *([f"-runs={runs}"] if runs else []),
        *extra,
    ]
    print(f"atheris: corpus {corpus}, crashes go to {fuzz.CORPUS}/crash-<sha1>")
    atheris.Setup(args, fuzz.one_input)
    atheris.Fuzz()
    return 0


def replay(paths: list[str]) -> int:
    import fuzz

    failed = 0
    for name in paths:
        data = Path(name).read_bytes()
        try:
            fuzz.replay(data)
        except Exception as exc:
            failed += 1
            print(f"{name}: CRASH {type(exc).__name__}: {exc}")
            traceback.print_exception(exc)
        else:
            print(f"{name}: ok")
    return 1 if failed else 0


def minimize(path: str) -> int:
    import fuzz

    data = Path(path).read_bytes()

    def signature(candidate: bytes) -> str | None:
        try:
            fuzz.replay(candidate)
        except Exception as exc:
            return str(fuzz.Crash(candidate, exc).signature)
        return None

    target = signature(data)
    if target is None:
        print(f"{path} does not crash")
        return 1
    print(f"target: {target}, {len(data)} octets")
    header, body = data[:2], data[2:]
    # Lines first, then runs of octets of shrinking size.
    units = body.splitlines(keepends=True)
    i = 0
    while i < len(units):
        candidate = units[:i] + units[i + 1 :]
        if signature(header + b"".join(candidate)) == target:
            units = candidate
        else:
            i += 1
    body = b"".join(units)
    step = max(1, len(body) // 2)
    while step:
        i = 0
        while i < len(body):
            shorter = body[:i] + body[i + step :]
            if signature(header + shorter) == target:
                body = shorter
            else:
                i += step
        step //= 2
    result = header + body
    print(f"minimized to {len(result)} octets: {result!r}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--atheris", action="store_true", help="coverage-guided fuzzing with atheris")
    parser.add_argument("--runs", type=int, default=0, help="inputs to run (0: no limit but --time)")
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed of the mutational loop")
    parser.add_argument("--time", type=float, default=None, help="seconds to run")
    parser.add_argument("--client-share", type=float, default=0.25, help="fraction of client-side sessions")
    parser.add_argument("--replay", nargs="+", metavar="FILE", help="replay saved inputs")
    parser.add_argument("--minimize", metavar="FILE", help="shrink a crashing input")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]
    print(f"proto fuzz on {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs")
    if args.replay:
        return replay(args.replay)
    if args.minimize:
        return minimize(args.minimize)
    if args.atheris:
        return with_atheris(args.time, args.runs, extra)
    if not args.runs and args.time is None:
        args.runs = 200_000
    return mutational(args.runs or sys.maxsize, args.seed, args.time, args.client_share)


if __name__ == "__main__":
    sys.exit(main())
