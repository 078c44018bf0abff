"""``GET /metrics``: Prometheus's scrape of this node (``relay.metrics``).

Open by default, like most exporters on an internal port; ``api.metrics_auth = true``
requires an operator key (the series name no tenant's data, only counts by route
template, status and provider type — but an operator may still want them private).
"""

from __future__ import annotations

from quart import Blueprint, Response

from .. import metrics
from .context import require_operator, state

blueprint = Blueprint("metrics", __name__)


def is_public() -> bool:
    return not state().runtime.config.api.metrics_auth


@blueprint.get("/metrics")
async def scrape() -> Response:
    if not is_public():
        require_operator("read the metrics")
    body, content_type = metrics.exposition()
    return Response(body, status=200, content_type=content_type)
