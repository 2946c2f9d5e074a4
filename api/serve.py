"""``recon serve``: the app on uvicorn, bound to loopback unless tokens protect it."""

from __future__ import annotations

import logging

from api.auth import is_loopback, parse_tokens
from reconciliation.errors import FixConfiguration
from workers.settings import Settings

log = logging.getLogger(__name__)


def check_exposure(settings: Settings, host: str) -> None:
    """Refuse (``FixConfiguration``) to listen beyond this machine when no token is configured: every answer
    but the health check would then be refused anyway, and the operator meant something else."""
    configured = settings.api_tokens.get_secret_value() if settings.api_tokens else None
    if not parse_tokens(configured) and not is_loopback(host):
        raise FixConfiguration(
            f"refusing to serve on {host} without RECON_API_TOKENS: set tokens (docs/api.md) or bind 127.0.0.1"
        )


def serve(settings: Settings, host: str, port: int) -> None:
    """Serve the API, the page and the metrics until interrupted; logs go to stderr as ``RECON_LOG_FORMAT`` says,
    with uvicorn's own records among them (never a request's headers, so never a token)."""
    import uvicorn  # noqa: PLC0415 - only this command serves

    from api.app import create_app  # noqa: PLC0415
    from workers.logs import configure_logging  # noqa: PLC0415

    check_exposure(settings, host)
    app = create_app(settings)
    configure_logging(settings)
    log.info("serving on http://%s:%d (the page at /, the API at /api/v1, metrics at /metrics)", host, port)
    uvicorn.run(app, host=host, port=port, log_config=None, proxy_headers=False, server_header=False)
