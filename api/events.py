"""``GET /events``: committed runs as server-sent events, read from the ``recon:events`` stream the workers append
to after each commit (``workers.publish``). The page refreshes an account's row when its event arrives.

Each read blocks at most ``BLOCK_MS`` so a closed page is noticed within a second; a comment goes out every
``HEARTBEAT_SECONDS`` so proxies keep the connection open; a stream ends after ``STREAM_SECONDS`` (the browser
reconnects at once, sending ``Last-Event-ID``, so nothing is missed) so that no connection holds a shutting-down
server for long.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from redis import Redis

from api.auth import Principal
from api.deps import Context, principal_of
from api.errors import ApiError
from workers.publish import EVENTS

BLOCK_MS = 1000
HEARTBEAT_SECONDS = 15.0
STREAM_SECONDS = 30.0
RETRY_MS = 1000
STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")

router = APIRouter()

#: One run event: its stream id, and its fields (bot, account, run_id, status).
Event = tuple[str, dict[str, str]]


@router.get("/events", include_in_schema=False)
async def events(
    request: Request, context: Context, caller: Annotated[Principal, Depends(principal_of)]
) -> StreamingResponse:
    """Committed runs the caller may read, as ``event: run`` with JSON data ``{bot, account, run_id, status}``;
    503 on the embedded default (no Redis: the page polls instead)."""
    redis = context.redis
    if redis is None:
        raise ApiError(503, "unavailable", "no Redis configured: the page polls /api/v1/fleet instead")
    resume = request.headers.get("last-event-id")
    start = resume if resume and STREAM_ID.match(resume) else await anyio.to_thread.run_sync(newest_id, redis)
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(_stream(request, redis, caller, start), media_type="text/event-stream", headers=headers)


async def _stream(request: Request, redis: Redis, caller: Principal, start: str) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n: connected\n\n"
    last, beat = start, time.monotonic()
    ends = beat + STREAM_SECONDS
    while time.monotonic() < ends and not await request.is_disconnected():
        batch = await anyio.to_thread.run_sync(read_after, redis, last)
        for event_id, fields in batch:
            last = event_id
            if caller.may_read(fields.get("bot", "")):
                yield format_event(event_id, fields)
                beat = time.monotonic()
        if time.monotonic() - beat >= HEARTBEAT_SECONDS:
            yield ": heartbeat\n\n"
            beat = time.monotonic()


def newest_id(redis: Redis) -> str:
    """The id of the stream's newest event ("0-0" when it has none): the stream is read after it."""
    newest: Any = redis.xrevrange(EVENTS, count=1)  # the sync client's answer (redis-py types it loosely)
    return _text(newest[0][0]) if newest else "0-0"


def read_after(redis: Redis, last: str) -> list[Event]:
    """The events after ``last``, waiting up to ``BLOCK_MS`` for one."""
    answer: Any = redis.xread({EVENTS: last}, block=BLOCK_MS, count=100)
    return [
        (_text(event_id), {_text(k): _text(v) for k, v in fields.items()})
        for _, entries in answer or ()
        for event_id, fields in entries
    ]


def format_event(event_id: str, fields: dict[str, str]) -> str:
    """One server-sent event: ``id``, ``event: run`` and the fields as JSON on one data line."""
    return f"id: {event_id}\nevent: run\ndata: {json.dumps(fields, separators=(',', ':'))}\n\n"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
