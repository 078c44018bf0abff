"""The fuzz invariant, as part of the test suite: any input either parses or raises
``RemoteProtocolError`` (``tests/proto/fuzz.py`` says what counts as a crash).

* A bounded, deterministic mutational run of ``INPUTS`` inputs, where an input is one
  chunk of a seed session (a command line or pipelined group, an AUTH line, a piece
  of a body, a BDAT chunk, a server reply), mutated or not, fed to a live connection
  and run until ``NEED_DATA`` — about a third of them mutated, a quarter client side.
  Longer runs and atheris: ``python bench/fuzz_proto.py``.
* Every file in ``fuzz_corpus/`` (crashers found so far) and the known crashers,
  replayed whole, byte at a time and in random pieces.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import fuzz
import pytest

import proto

#: Inputs of the mutational run (>= 200,000; see the module docstring for what one is).
INPUTS = 200_000
SEED = 20_240_501


@pytest.fixture
def coverage_paused() -> Iterator[None]:
    """Pause coverage measurement for the test, as pytest-cov's ``no_cover`` marker
    does (the marker needs pytest-cov; this works under ``coverage run`` as well).

    Why: the run executes most of proto without checking what it does, so its lines
    would count as covered by a test that asserts nothing about them; and a tracer
    makes it about four times slower (on the 2-core development machine: ~11 s of
    CPU untraced, ~40 s traced).
    """
    try:
        import coverage
    except ImportError:
        yield
        return
    current = coverage.Coverage.current()
    if current is None:
        yield
        return
    current.stop()
    try:
        yield
    finally:
        with warnings.catch_warnings():  # "already imported a file that will be measured"
            warnings.simplefilter("ignore", getattr(coverage, "exceptions", coverage).CoverageWarning)
            current.start()


@pytest.mark.usefixtures("coverage_paused")
def test_mutational_run_finds_no_crash() -> None:
    stats = fuzz.Fuzzer(seed=SEED).run(INPUTS)
    assert stats.inputs >= INPUTS
    assert stats.mutated > INPUTS // 4 and stats.server_sessions < stats.sessions
    crashes = [f"{signature}: {crash} -- input {crash.data[:300]!r}" for signature, crash in stats.crashes.items()]
    assert not crashes, "\n".join(crashes)


@pytest.mark.parametrize("path", sorted(fuzz.CORPUS.glob("*")), ids=lambda p: p.name)
def test_corpus_input_does_not_crash(path: Path) -> None:
    fuzz.replay(path.read_bytes())


@pytest.mark.parametrize("name", sorted(fuzz.KNOWN_CRASHERS))
def test_known_crasher_does_not_crash(name: str) -> None:
    fuzz.replay(fuzz.KNOWN_CRASHERS[name])


def test_the_harness_sees_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    """Undo the fix for the first known crasher: the harness must report it."""
    monkeypatch.setattr("proto._syntax.echo", lambda text, limit=0: text)
    monkeypatch.setattr("proto._server.echo", lambda text, limit=0: text)
    with pytest.raises(ValueError, match="control character"):
        fuzz.one_input(fuzz.KNOWN_CRASHERS["control-char-in-address-literal"], "whole")
    stats = fuzz.Fuzzer(seed=1, seeds=[fuzz.Seed(b"\0\0", (b"EHLO x\r\n", b"MAIL FROM:<a@[1\x01]>\r\n"))]).run(50)
    assert stats.crashes


def test_seed_sessions_reach_the_deep_states() -> None:
    """Unmutated, the seeds drive both sides through TLS, AUTH, DATA and BDAT, so the
    mutations start from there (a harness that stalls early would fuzz little)."""
    server: Counter[str] = Counter()
    client: Counter[str] = Counter()

    class CountingServer(fuzz.ServerHarness):
        def respond(self, event: proto.Event, kind: type[proto.Event]) -> proto.Reply:
            server[kind.__name__] += 1
            return super().respond(event, kind)

    class CountingClient(fuzz.ClientHarness):
        def move(self) -> None:
            client[self.conn.state.name] += 1
            super().move()

    for seed in fuzz.all_seeds():
        harness = (CountingClient if seed.header[0] & fuzz.CLIENT else CountingServer)(seed.header)
        for chunk in seed.chunks:
            if chunk == fuzz.HANDSHAKE:
                harness.handshake()
            else:
                harness.feed(chunk)
        harness.close()
    for kind in ("StartTLS", "AuthCredentials", "MailFrom", "RcptTo", "DataStart", "EndOfData", "BdatChunk",
                 "Quit", "ProtocolViolation"):
        assert server[kind] >= 3, (kind, server)
    for state in ("COMMAND", "AUTH", "DATA"):
        assert client[state] >= 3, (state, client)
