"""The ASGI app of ``recon serve``: the API under ``/api/v1``, the page at ``/``, Prometheus metrics at
``/metrics``. It reads Postgres and Redis and sends tasks by name, exactly as bots do (``workers.triggers``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI

from api import pages
from api.context import ApiContext
from api.errors import install_error_handlers
from api.routes import fleet, health, metrics, operate
from workers.pipeline import utc_now
from workers.settings import Settings, load_settings

API_PREFIX = "/api/v1"
TITLE = "fleet-recon"


def create_app(settings: Settings | None = None, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    """The app for ``settings`` (from ``RECON_*`` when None); bad tokens are ``FixConfiguration`` here, before
    the server takes a request."""
    context = ApiContext(settings or load_settings(), clock)
    _ = context.tokens  # refuse a bad RECON_API_TOKENS now, not on the first request
    app = FastAPI(
        title=TITLE,
        version="1",
        summary="Reconciles trading bots' books with their venues: the fleet, its runs, breaks and books.",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
    )
    app.state.context = context
    install_error_handlers(app)
    for router in (health.router, fleet.router, operate.router):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(metrics.router)
    app.include_router(pages.router)
    return app
