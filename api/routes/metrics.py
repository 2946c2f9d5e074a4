"""``GET /metrics``: the fleet's figures for Prometheus (``api.metrics``); open unless ``RECON_METRICS_TOKEN``
is set, then only with that bearer token."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response

from api.auth import bearer_of
from api.deps import Context
from api.errors import ApiError
from api.metrics import render_metrics

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
def metrics(context: Context, request: Request) -> Response:
    """The exposition text, computed now from Postgres and Redis."""
    expected = context.settings.metrics_token
    if expected is not None:
        presented = bearer_of(request.headers.get("authorization")) or ""
        if not hmac.compare_digest(expected.get_secret_value().encode(), presented.encode()):
            raise ApiError(401, "unauthorized", "GET /metrics needs the RECON_METRICS_TOKEN bearer token")
    body, content_type = render_metrics(context.database, context.redis, context.fleet(), context.clock())
    return Response(body, media_type=content_type)
