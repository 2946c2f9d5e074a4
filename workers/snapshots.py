"""Capturing an account's venue as a sim state file (``recon venue snapshot``), to rehearse an incident on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from venues.sim_state import state_document
from workers.connect import open_venue
from workers.fleet import AccountConfig


def captured_state(config: AccountConfig, now: datetime) -> dict[str, Any]:
    """What ``config``'s venue reports at ``now``, in the sim venue's state-file format (no credentials: a
    snapshot holds none). A venue that cannot be read raises its ``ReconError``; nothing is captured."""
    return state_document(open_venue(config).fetch_snapshot(now))
