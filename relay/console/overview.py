"""The overview: queue depth by status (and what finished in the last hour), messages per minute over the last hour (an
inline SVG bar chart), the oldest waiting message's age, and providers with the
circuit-breaker state the workers last saved. Four reads, one crossing."""

from __future__ import annotations

import datetime as dt

import attrs
from quart import Response

from .. import models
from ..api import context
from . import web
from .web import blueprint

#: The chart's drawing box (SVG user units); bars are laid out in it.
CHART_WIDTH = 600
CHART_HEIGHT = 120
MINUTES = 60
WAITING = (models.MessageStatus.QUEUED, models.MessageStatus.SENDING, models.MessageStatus.DEFERRED)
#: Counted over the last hour only (by when they finished).
FINISHED = (models.MessageStatus.SENT, models.MessageStatus.FAILED)


@attrs.frozen
class Bar:
    #: ``HH:MM`` (UTC) of the minute the bar counts.
    label: str
    count: int
    x: float
    y: float
    width: float
    height: float


def chart(per_minute: list[tuple[dt.datetime, int]], now: dt.datetime) -> list[Bar]:
    """One bar per minute of the last hour (empty minutes included), oldest first."""
    end = now.replace(second=0, microsecond=0)
    counts = {minute: n for minute, n in per_minute}
    minutes = [end - dt.timedelta(minutes=MINUTES - 1 - i) for i in range(MINUTES)]
    top = max([counts.get(m, 0) for m in minutes] + [1])
    slot = CHART_WIDTH / MINUTES
    bars = []
    for i, minute in enumerate(minutes):
        n = counts.get(minute, 0)
        height = round(CHART_HEIGHT * n / top, 1)
        bars.append(Bar(
            minute.strftime("%H:%M"), n, round(i * slot, 1), CHART_HEIGHT - height,
            round(slot * 0.8, 1), height,
        ))
    return bars


def age(seconds: float) -> str:
    """``3 h 05 min`` — readable at a glance."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, _ = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min"


@blueprint.get("/")
async def overview() -> Response:
    store = context.storage()
    scope = context.scope()
    summary, per_minute, providers, health = await store.run(  # type: ignore[call-overload]
        store.messages.summary(account_id=scope),
        store.messages.per_minute(account_id=scope),
        store.providers.list(account_id=scope, limit=web.PAGE + 1),
        store.worker_state.health(account_id=scope),
    )
    states = {h.provider_id: h for h in health}
    bars = chart(per_minute, dt.datetime.now(dt.UTC))
    return await web.render(
        "overview.html",
        waiting=[(str(s), summary.by_status[s]) for s in WAITING],
        finished=[(str(s), summary.by_status[s]) for s in FINISHED],
        oldest=age(summary.oldest_waiting_seconds) if summary.oldest_waiting_seconds else None,
        bars=bars, total=sum(b.count for b in bars), peak=max(b.count for b in bars),
        chart_width=CHART_WIDTH, chart_height=CHART_HEIGHT,
        providers=providers[: web.PAGE], more_providers=len(providers) > web.PAGE, states=states,
    )
