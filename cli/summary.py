"""``recon summary``: each account over a window of time (by default the last 24 hours), the page alerts link to."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from cli.files import ForceFlag, OutOption, refuse_existing, write_atomically
from cli.options import JsonFlag, console, optional_account_name, optional_bot_name, options_of
from reconciliation.errors import FixConfiguration

_RELATIVE = re.compile(r"(\d{1,6})([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str, now: datetime) -> datetime:
    """The start of the window: ``Nm``, ``Nh`` or ``Nd`` before ``now``, or an ISO 8601 time (UTC when it names no
    zone); anything else, or a time after ``now``, is a usage error."""
    text = value.strip()
    relative = _RELATIVE.fullmatch(text)
    if relative:
        return now - timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FixConfiguration(
            f"--since: {value!r} is neither a duration (24h, 7d, 90m) nor an ISO 8601 time"
        ) from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if moment > now:
        raise FixConfiguration(f"--since: {value!r} is in the future")
    return moment


def summary(
    ctx: typer.Context,
    since: Annotated[str, typer.Option(help="Window start: 24h, 7d, 90m, or an ISO 8601 time (UTC).")] = "24h",
    bot: Annotated[str | None, typer.Option(help="Only this bot.", callback=optional_bot_name)] = None,
    account: Annotated[str | None, typer.Option(help="Only this account name.", callback=optional_account_name)] = None,
    as_json: JsonFlag = False,
    out: OutOption = None,
    force: ForceFlag = False,
) -> None:
    """Each account over the window: runs by status, discrepancies, actions, breaks opened, resolved and open by
    severity, halts, and the last run's figures."""
    from cli import render  # noqa: PLC0415
    from cli.exports import plain_text  # noqa: PLC0415
    from models.summaries import account_summaries  # noqa: PLC0415
    from workers.reports import summary_json  # noqa: PLC0415

    now = datetime.now(UTC)
    start = parse_since(since, now)
    if out is not None:
        refuse_existing(out, force)
    with options_of(ctx).database().reading() as session:
        document = summary_json(account_summaries(session, start, bot, account), start, now)
    if out is None:
        if as_json:
            render.print_json(console, document)
        else:
            console.print(render.summary_view(document))
        return
    write_atomically(
        out, render.json_text(document) if as_json else plain_text(render.summary_view(document), 80), force
    )
    console.print(f"wrote the summary since {document['since']} to {out}", soft_wrap=True)
