"""What drivers share, owned by the worker service (``providers.Context``).

A module of its own so a driver can name it without importing the package that
imports every driver.
"""

from __future__ import annotations

import attrs
import httpx

from ._smtp_pool import SmtpPool


@attrs.frozen
class Context:
    """What drivers share, owned by the worker service."""

    http: httpx.AsyncClient
    connect_timeout: float
    send_timeout: float
    #: Our name in EHLO to SMTP upstreams.
    hostname: str = "localhost"
    #: Idle SMTP sessions kept for the next message to the same upstream; the worker
    #: runs its reaper (``Worker.run``) and whoever made the context closes it.
    smtp_pool: SmtpPool = attrs.field(factory=SmtpPool, repr=False)
