"""``recon serve``: the HTTP API, the fleet page and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

import typer

from cli.options import options_of
from reconciliation.errors import FixConfiguration


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on; beyond loopback only with RECON_API_TOKENS.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the API (/api/v1), the fleet page (/) and Prometheus metrics (/metrics) until ^C.

    Tokens come from RECON_API_TOKENS (name:role:token, comma-separated; role read, operate or bot=<bot>).
    Without RECON_REDIS_URL (the embedded default) reads work and a trigger runs the reconciliation here.
    """
    from api.serve import check_exposure  # noqa: PLC0415 - FastAPI and uvicorn only for this command
    from api.serve import serve as run_server  # noqa: PLC0415
    from workers.settings import load_settings  # noqa: PLC0415

    if not 1 <= port <= 65535:
        raise FixConfiguration(f"--port: must be from 1 to 65535, got {port}")
    check_exposure(load_settings(), host)  # the tokens and the address first: they decide whether to go on at all
    run_server(options_of(ctx).settings(), host, port)
