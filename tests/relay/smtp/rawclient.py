"""A blocking byte-level SMTP client for what smtplib will not send (use from a thread)."""

from __future__ import annotations

import base64
import socket
import ssl


class RawClient:
    def __init__(self, port: int, timeout: float = 10.0, *, source: str | None = None) -> None:
        """``source``: the local address to connect from (``127.0.0.2`` is another client)."""
        self.sock: socket.socket | ssl.SSLSocket = socket.create_connection(
            ("127.0.0.1", port), timeout=timeout, source_address=(source, 0) if source else None
        )
        self._buffer = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> tuple[int, list[str]]:
        """Read one (possibly multi-line) reply."""
        lines = []
        while True:
            while b"\r\n" not in self._buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError(f"connection closed after {lines!r} / {self._buffer!r}")
                self._buffer += chunk
            line, self._buffer = self._buffer.split(b"\r\n", 1)
            text = line.decode()
            lines.append(text[4:])
            if text[3:4] != "-":
                return int(text[:3]), lines

    def command(self, line: bytes) -> tuple[int, list[str]]:
        self.send(line + b"\r\n")
        return self.reply()

    def closed_by_peer(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, ssl.SSLError):
            return True

    def start_tls(self, context: ssl.SSLContext) -> None:
        assert not self._buffer, f"plaintext left over before TLS: {self._buffer!r}"
        self.sock = context.wrap_socket(self.sock, server_hostname="localhost")

    def login(self, context: ssl.SSLContext, user: str, password: str) -> None:
        assert self.reply()[0] == 220
        assert self.command(b"EHLO client.test")[0] == 250
        assert self.command(b"STARTTLS")[0] == 220
        self.start_tls(context)
        assert self.command(b"EHLO client.test")[0] == 250
        blob = base64.b64encode(f"\0{user}\0{password}".encode())
        code, text = self.command(b"AUTH PLAIN " + blob)
        assert code == 235, (code, text)
