"""``GET /api/v1/health``: each dependency's state, for load balancers and people; needs no token."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.context import ApiContext
from api.deps import Context
from api.schemas import Health, Live
from workers.runtime import first_line

router = APIRouter()
WORKER_PING_SECONDS = 1.0
NOT_CONFIGURED = "not configured (the embedded default)"

#: A dependency's state: whether it is fine, and what to show.
State = tuple[bool, str]


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
def health(context: Context) -> JSONResponse:
    """ok (200) when the database, Redis and at least one worker answer; degraded (503) naming what does not.
    On the embedded default Redis and the workers are not configured, which is ok."""
    database, redis = _database(context), _redis(context)
    workers = _workers(context) if context.redis is not None and redis[0] else _workers_unasked(context)
    healthy = database[0] and redis[0] and workers[0]
    body = Health(status="ok" if healthy else "degraded", database=database[1], redis=redis[1], workers=workers[1])
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)


@router.get("/live", response_model=Live)
def live() -> Live:
    """The process answers (liveness): nothing else is checked, so restarting it would not help otherwise."""
    return Live(status="ok")


def _database(context: ApiContext) -> State:
    try:
        context.database.ping()
    except Exception as error:  # any failure is the answer, not a crash of the health check
        return False, f"unavailable: {first_line(error)}"
    return True, "ok"


def _redis(context: ApiContext) -> State:
    if context.redis is None:
        return True, NOT_CONFIGURED
    try:
        context.redis.ping()
    except Exception as error:
        return False, f"unavailable: {first_line(error)}"
    return True, "ok"


def _workers(context: ApiContext) -> State:
    try:
        replies = context.celery.control.ping(timeout=WORKER_PING_SECONDS) or []
    except Exception as error:
        return False, f"unavailable: {first_line(error)}"
    return bool(replies), f"{len(replies)} answering" if replies else "none answering"


def _workers_unasked(context: ApiContext) -> State:
    return (True, NOT_CONFIGURED) if context.redis is None else (False, "unknown: Redis is unavailable")
