"""The web console at ``/console/``: server-rendered pages over the API's storage calls.

``install(app, config)`` adds it to the API's quart-trio app (``relay.api.app``), so
``relay api`` and ``relay serve`` serve it on ``api.listen``. ``web`` holds the
blueprint and its pipeline (session cookie, key re-check, CSRF, HTML errors,
Content-Security-Policy); one module per page family registers its views on it.
Templates and the stylesheet ship in the package (``templates/``, ``static/``):
nothing is fetched from elsewhere at run time.
"""

from . import (
    accounts,
    dkim_keys,
    messages,
    overview,
    providers,
    rules,
    signin,
    suppressions,
    webhooks,
)
from .web import NAME, install

__all__ = [
    "NAME", "accounts", "dkim_keys", "install", "messages", "overview", "providers", "rules",
    "signin", "suppressions", "webhooks",
]
