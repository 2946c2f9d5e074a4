"""Rendering the page's templates (Jinja2, autoescaped) into HTML responses with the page's security headers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from api.deps import context_of

TEMPLATES = Path(__file__).resolve().parent / "templates"

#: Only our own files run or style the page; no other site may frame it (its buttons halt accounts).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def age_text(seconds: float | None) -> str:
    """An age as people read it: "42 s", "5 min", "3 h", "2 d" ("never" for None)."""
    if seconds is None:
        return "never"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{max(int(seconds), 0)} s"


def seconds_since(moment: str | None, now: datetime) -> float | None:
    """Seconds from an ISO time (``...Z``) to ``now``, or None."""
    if not moment:
        return None
    return (now - datetime.fromisoformat(moment.replace("Z", "+00:00"))).total_seconds()


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined, trim_blocks=True,
        lstrip_blocks=True,
    )  # fmt: skip
    environment.filters["age"] = age_text
    return environment


ENVIRONMENT = _environment()


def render(request: Request, template: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    """``template`` rendered with ``values`` (and ``now``, ``since``, ``live_mode``), as an HTML response."""
    context = context_of(request)
    now = context.clock()
    html = ENVIRONMENT.get_template(template).render(
        now=now,
        since=lambda moment: seconds_since(moment, now),
        live_mode="events" if context.coordinated else "poll",
        **values,
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
