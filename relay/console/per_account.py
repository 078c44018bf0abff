"""Pages of one account's objects (webhooks, suppressions, DKIM keys): which account a
caller may open, and the page where an operator picks one.

The objects live under ``/console/accounts/<id>/…`` as in the API, and the answer for
an account the caller may not see is the API's (``ip_credentials.visible``): a 404 —
here a 404 page — the same for another tenant's account as for none. An account key
skips the picker and goes straight to its own account.
"""

from __future__ import annotations

import uuid

from quart import Response

from .. import models
from ..api import context
from ..api.ip_credentials import visible
from ..api.problems import Problem
from . import web


async def visible_account(account_id: uuid.UUID) -> models.Account:
    """The account, when the caller may see it.

    Raises: Problem 404 for another tenant's (or no) account, as the API answers.
    """
    try:
        await visible(account_id)
    except Problem:
        raise web.not_found("account") from None
    account = await context.storage().accounts.get(account_id)
    if account is None:
        raise web.not_found("account")
    return account


async def pick(endpoint: str, title: str, what: str) -> Response:
    """The picker for ``endpoint`` (a view taking ``account_id``): an operator chooses
    among the first page of accounts; an account key is sent to its own."""
    who = web.caller()
    if not who.is_operator:
        return web.see_other(endpoint, account_id=who.account_id)
    accounts = await context.storage().accounts.list(limit=web.PAGE)
    return await web.render(
        "pick_account.html", accounts=accounts, more=len(accounts) >= web.PAGE,
        endpoint=endpoint, title=title, what=what,
    )
