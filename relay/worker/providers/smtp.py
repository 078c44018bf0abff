"""SMTP upstream: not available yet.

The SMTP provider drives ``proto.ClientConnection`` (sans-IO) over trio streams:
STARTTLS or implicit TLS with certificate verification (switchable per provider),
AUTH, per-recipient results and connection reuse. ``proto``'s client side has not
landed (``proto/_client.py`` is a placeholder), and this project does not grow a
second SMTP client beside it, so until it lands building an ``smtp`` provider raises
``ProviderConfigError``: the worker logs that, counts it against the provider's
breaker and fails over to the next provider on the route, and messages with no other
provider are deferred, not lost.

Config it will read: ``host`` (required), ``port`` (default 587; 465 with
``tls = "implicit"``), ``tls`` (``"starttls"`` default, ``"implicit"`` or ``"none"``),
``verify`` (default true), ``ca_file`` (optional PEM), ``username`` and ``password``
(optional, AUTH PLAIN/LOGIN).
"""

from __future__ import annotations

from ... import models
from .base import Envelope, ProviderConfigError, Result


class Smtp:
    def __init__(self, provider: models.Provider, context: object) -> None:
        raise ProviderConfigError(
            f"smtp provider {provider.name!r}: SMTP delivery is not available in this build"
            " (it waits for proto's client side); route this account through an HTTP provider"
            " meanwhile, or keep the messages deferred until an upgrade"
        )

    async def deliver(self, envelope: Envelope) -> Result:  # pragma: no cover - never built
        raise NotImplementedError

    async def aclose(self) -> None:  # pragma: no cover
        pass
