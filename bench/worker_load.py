"""Delivery worker load generator: queue N messages, deliver them, report messages/s.

Starts its own embedded PostgreSQL (pgserver, in a temporary directory), a local
upstream sink on 127.0.0.1 and one or more workers in this process, queues
``--messages`` messages of ``--size`` bytes for one account whose default provider
points at the sink, then times the worker from the first claim until every message
is ``sent``. Traffic only goes to 127.0.0.1; the run is bounded by ``--max-seconds``.

For ``--provider mailgun``/``sendgrid`` the sink speaks HTTP/1.1 (h11) and answers
like Mailgun's messages.mime (raw MIME upload: the cheapest provider to build for) or
SendGrid's mail/send (JSON built from the parsed message: the most expensive). For
``--provider smtp`` it is an SMTP server on ``proto.ServerConnection`` (plaintext,
no AUTH; PIPELINING and CHUNKING offered unless ``--smtp-data``) that accepts every
message, and the worker delivers through the smtp provider, reusing its sessions.

Examples:
  python bench/worker_load.py --messages 2000
  python bench/worker_load.py --messages 2000 --provider sendgrid --concurrency 32
  python bench/worker_load.py --messages 2000 --workers 2
  python bench/worker_load.py --messages 2000 --provider smtp
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import h11
import trio

import proto

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from relay import models
from relay.config import Config, WorkerConfig
from relay.storage import host, migrations, open_storage


async def sink(stream: trio.SocketStream, status: int, counter: list[int]) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(1 << 16))
            elif isinstance(event, h11.EndOfMessage):
                counter[0] += 1
                body = b'{"id": "<x@sink>", "message": "Queued. Thank you."}'
                await stream.send_all(conn.send(h11.Response(
                    status_code=status, headers=[("content-length", str(len(body)))])))
                await stream.send_all(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
                conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                return
    except (h11.RemoteProtocolError, trio.BrokenResourceError):
        return
    finally:
        await trio.aclose_forcefully(stream)


async def smtp_sink(stream: trio.SocketStream, chunking: bool, counter: list[int], sessions: list[int]) -> None:
    """Accept everything; count messages (``counter``) and sessions (``sessions``)."""
    sessions[0] += 1
    conn = proto.ServerConnection("sink.bench", extensions=proto.Extensions(
        starttls=False, auth=(), chunking=chunking), auth_requires_tls=False)
    try:
        await stream.send_all(conn.send(proto.Reply(220, "sink.bench ESMTP")))
        while conn.state not in (proto.CLOSING, proto.CLOSED):
            event = conn.next_event()
            if event is proto.NEED_DATA:
                conn.receive_data(await stream.receive_some(1 << 16))
            elif isinstance(event, (proto.AutoReply, proto.ProtocolViolation)):
                await stream.send_all(conn.send(event.reply))
            elif isinstance(event, (proto.Ehlo, proto.Helo)):
                await stream.send_all(conn.send(proto.Reply(250, "")))
            elif isinstance(event, proto.DataStart):
                await stream.send_all(conn.send(proto.Reply(354, "go ahead")))
            elif isinstance(event, proto.Quit):
                await stream.send_all(conn.send(proto.Reply(221, "bye", "2.0.0")))
            elif isinstance(event, proto.EndOfData):
                counter[0] += 1
                await stream.send_all(conn.send(event.refusal or proto.Reply(250, "queued", "2.0.0")))
            elif isinstance(event, proto.Event) and not isinstance(event, (proto.Data, proto.ConnectionClosed)):
                await stream.send_all(conn.send(proto.Reply(250, "OK", "2.0.0")))
    except (proto.RemoteProtocolError, trio.BrokenResourceError):
        return
    finally:
        await trio.aclose_forcefully(stream)


def make_body(n: int, size: int) -> bytes:
    head = (b"From: bench@example.com\r\nTo: r0@example.net\r\nSubject: bench %d\r\n"
            b"Message-ID: <%d@bench>\r\n\r\n" % (n, n))
    line = b"x" * 76 + b"\r\n"
    return head + line * max(1, (size - len(head)) // len(line))


async def main(args: argparse.Namespace) -> dict[str, object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    from relay import app, auth
    from relay.worker import run_worker

    with tempfile.TemporaryDirectory() as tmp:
        server = pgserver.get_server(Path(tmp), cleanup_mode="stop")
        try:
            url = server.get_uri()
            await trio.to_thread.run_sync(migrations.apply, url)
            async with open_storage(url, min_size=2, max_size=10) as storage, trio.open_nursery() as nursery:
                counter, sessions = [0], [0]
                if args.provider == "smtp":
                    handler = functools.partial(smtp_sink, chunking=not args.smtp_data, counter=counter,
                                                sessions=sessions)
                else:
                    handler = functools.partial(sink, status=202 if args.provider == "sendgrid" else 200,
                                                counter=counter)
                listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
                port = listeners[0].socket.getsockname()[1]
                key = auth.new_key(auth.ACCOUNT_KEY_PREFIX)
                account = await storage.accounts.create(
                    name="bench", email="bench@example.com", password_hash="x",
                    api_key_hash=key.hash, api_key_prefix=key.prefix, allowed_domains=("example.com",))
                config: dict[str, object] = {"api_key": "k", "base_url": f"http://127.0.0.1:{port}"}
                if args.provider == "smtp":
                    config = {"host": "127.0.0.1", "port": port, "tls": "none"}
                if args.provider == "mailgun":
                    config["domain"] = "mg.example.com"
                provider = await storage.providers.create(
                    account_id=account.id, name="sink", type=models.ProviderType(args.provider), config=config)
                await storage.accounts.update(account.id, default_provider_id=provider.id)
                rcpt = tuple(f"r{i}@example.net" for i in range(args.recipients))
                for start in range(0, args.messages, 500):
                    await storage.messages.enqueue_many([
                        models.NewMessage(account_id=account.id, mail_from="bench@example.com",
                                          rcpt_to=rcpt, raw=make_body(n, args.size))
                        for n in range(start, min(start + 500, args.messages))
                    ])
                worker_config = WorkerConfig(
                    batch_size=args.batch, concurrency=args.concurrency,
                    per_provider_concurrency=args.concurrency, poll_interval=0.05)
                runtime = app.Runtime(config=Config(worker=worker_config), database_url=url, storage=storage)
                started = time.perf_counter()
                workers = []
                with trio.move_on_after(args.max_seconds) as scope:
                    async with trio.open_nursery() as running:
                        for _ in range(args.workers):
                            workers.append(await running.start(functools.partial(
                                run_worker, runtime, run_housekeeping=False)))
                        while True:
                            counts = await storage.messages.count_by_status()
                            if counts[models.MessageStatus.SENT] + counts[models.MessageStatus.FAILED] >= args.messages:
                                break
                            await trio.sleep(0.05)
                        elapsed = time.perf_counter() - started
                        running.cancel_scope.cancel()
                counts = await storage.messages.count_by_status()
                nursery.cancel_scope.cancel()
        finally:
            server.cleanup()
    if scope.cancelled_caught:
        elapsed = args.max_seconds
    sent = counts[models.MessageStatus.SENT]
    return {
        "provider": args.provider, "workers": args.workers, "messages": args.messages,
        "size": args.size, "recipients": args.recipients, "batch": args.batch,
        "concurrency": args.concurrency, "sent": sent,
        "failed": counts[models.MessageStatus.FAILED], "requests_at_sink": counter[0],
        **({"smtp_sessions": sessions[0], "smtp_data": args.smtp_data} if args.provider == "smtp" else {}),
        "seconds": round(elapsed, 2), "messages_per_second": round(sent / elapsed, 1),
        "timed_out": scope.cancelled_caught,
    }


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=4000, help="bytes per message")
    parser.add_argument("--recipients", type=int, default=1)
    parser.add_argument("--provider", choices=("mailgun", "sendgrid", "smtp"), default="mailgun")
    parser.add_argument("--smtp-data", action="store_true", help="smtp sink: no CHUNKING, so DATA is used")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=300)
    return parser.parse_args(argv)


if __name__ == "__main__":
    result = host.run(main, parse(sys.argv[1:]))
    print(json.dumps(result))
