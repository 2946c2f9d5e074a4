"""The API's request and answer shapes, as they appear in its OpenAPI schema. Quantities and money are decimal
strings, times ISO 8601 UTC with a Z (``workers.reports``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reconciliation.plan import RECONCILE_REASONS

Reason = Literal["manual", "schedule", "startup", "large_fill"]
assert set(Reason.__args__) <= set(RECONCILE_REASONS)  # type: ignore[attr-defined]


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, for programs: not_found, forbidden, unauthorized, invalid_request, …")
    message: str = Field(description="For people: what went wrong and what to do")


class ErrorAnswer(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: str = Field(description="ok, or why not")
    redis: str = Field(description="ok, not configured (the embedded default), or why not")
    workers: str = Field(description="how many workers answer, not configured, or why not")


class Live(BaseModel):
    status: Literal["ok"]


class LastRun(BaseModel):
    run_id: int
    status: str
    reason: str
    finished_at: str | None


class AccountRow(BaseModel):
    """One account of the fleet, with its trading gate."""

    bot: str
    account: str
    venue: str
    interval_seconds: int | None = Field(description="how often beat reconciles it; None when not in the fleet file")
    last_run: LastRun | None
    last_success_at: str | None
    last_success_age_seconds: float | None
    open_breaks: dict[str, int] = Field(description="open breaks by severity: minor, moderate, critical")
    halted: bool
    halted_reason: str | None
    stale: bool
    trading_allowed: bool
    reasons: list[Literal["halted", "last_run_failed", "stale", "open_critical_breaks"]]


class Fleet(BaseModel):
    accounts: list[AccountRow]


class TriggerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason = "large_fill"


class TriggerAnswer(BaseModel):
    queued: bool = Field(description="True when this request queued a run")
    joined: bool = Field(description="True when a queued or running run serves it instead")
    run_id: int | None = Field(default=None, description="The run made in this process (the embedded default)")


class HaltRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500)


class HaltAnswer(BaseModel):
    bot: str
    account: str
    halted: bool
    changed: bool = Field(description="False when the account already was so")


class RunLine(BaseModel):
    run_id: int
    bot: str
    account: str
    reason: str
    status: str
    dry_run: bool
    started_at: str
    finished_at: str | None
    discrepancies: int


class Runs(BaseModel):
    runs: list[RunLine]
    next_before: int | None = Field(description="pass as ?before= for the next (older) page; None on the last")


class BreakRow(BaseModel):
    id: int
    bot: str
    account: str
    subject: str
    kind: str
    severity: str
    first_seen_at: str
    last_seen_at: str
    occurrences: int
    resolved_at: str | None


class Breaks(BaseModel):
    breaks: list[BreakRow]


Report = dict[str, Any]  # the contract of `recon report --json` (docs/reports.md)
Books = dict[str, Any]  # the contract of `recon ledger show --json` (docs/reports.md)
