"""``GET /metrics``: Prometheus's scrape of this node (``relay.metrics``).

Open by default, like most exporters on an internal port; ``api.metrics_auth = true``
requires an operator key (the series name no tenant's data, only counts by route
template, status and provider type — but an operator may still want them private).
"""

from __future__ import annotations

from quart import Blueprint, Response

from .. import metrics
from ..config import Config
from .context import require_operator, state
from .operations import Reply, operation

blueprint = Blueprint("metrics", __name__)


def is_public() -> bool:
    return public_with(state().runtime.config)


def public_with(config: Config) -> bool:
    return not config.api.metrics_auth


@blueprint.get("/metrics")
@operation(
    "metrics", "Prometheus metrics of this node (every process of it)",
    {200: Reply(
        "Prometheus text exposition format 0.0.4",
        content={"text/plain": {"schema": {"type": "string"}}},
    )},
    public=public_with,
)
async def scrape() -> Response:
    if not is_public():
        require_operator("read the metrics")
    body, content_type = metrics.exposition()
    return Response(body, status=200, content_type=content_type)
