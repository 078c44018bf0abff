"""Provider drivers, one module each, behind ``base.Driver``; ``build`` picks the module.

``build`` is a plain ``match`` on the provider type: adding a provider means adding a
module and a case here, nothing else (no registry, no lookup by name).
"""

from __future__ import annotations

from ... import models
from ._context import Context
from ._smtp_pool import SmtpPool
from .base import (
    Driver,
    Envelope,
    ProviderConfigError,
    RecipientResult,
    Result,
    Verdict,
)

__all__ = [
    "Context",
    "Driver",
    "Envelope",
    "ProviderConfigError",
    "RecipientResult",
    "Result",
    "SmtpPool",
    "Verdict",
    "build",
]


def build(provider: models.Provider, context: Context) -> Driver:
    """A driver for one configured provider.

    Raises:
        ProviderConfigError: the provider's config cannot be used; the message says
            which key to fix.
    """
    match provider.type:
        case models.ProviderType.SENDGRID:
            from .sendgrid import SendGrid

            return SendGrid(provider, context.http)
        case models.ProviderType.MAILGUN:
            from .mailgun import Mailgun

            return Mailgun(provider, context.http)
        case models.ProviderType.SES:
            from .ses import Ses

            return Ses(provider, context.http)
        case models.ProviderType.POSTMARK:
            from .postmark import Postmark

            return Postmark(provider, context.http)
        case models.ProviderType.SMTP:
            from .smtp import Smtp

            return Smtp(provider, context)
    raise ProviderConfigError(f"provider {provider.name!r}: unknown type {provider.type!r}")
