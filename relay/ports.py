"""Listening ports shared by sibling processes (``SO_REUSEPORT``).

Used by the supervisor, which reserves a port 0 before its children start, and by
the API's children, which listen on it together; SMTP makes its own trio socket
instead (see ``relay.smtp.server._reuse_port_listener``).
"""

from __future__ import annotations

import socket


def bind_reuse_port(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT`` (not yet listening),
    so sibling processes can share the port; an empty host is every IPv4 address.

    Raises:
        OSError: the address cannot be bound; the socket is closed first.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host or "0.0.0.0", port))
    except BaseException:
        sock.close()
        raise
    return sock
