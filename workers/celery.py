"""The Celery app: ``celery -A workers worker|beat|flower`` finds it here as ``workers.celery:app``.

Configured from one settings object (``RECON_*``): Redis as message broker, small expiring results, late
acks with reject-on-worker-lost and prefetch 1 so no work is lost, nested time limits, a queue per venue, and
beat's schedule from the fleet file. Tasks live in ``tasks`` and are included by name only.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu.entity import Exchange, Queue

from reconciliation.errors import FixConfiguration
from workers.fleet import fleet_of
from workers.schedule import QUEUES, beat_schedule
from workers.settings import Settings


class ReconCelery(Celery):  # type: ignore[misc]
    """The Celery app, carrying the settings it was made from outside ``conf``: ``celery inspect conf`` and Flower
    show ``conf``, and the settings are this process's business."""

    def __init__(self, settings: Settings, **options: Any) -> None:
        super().__init__("recon", **options)
        self.recon_settings = settings


def create_app(settings: Settings | None = None) -> Celery:
    """A Celery app for ``settings`` (default: from the environment)."""
    settings = settings or Settings()
    redis_url = settings.redis_url.get_secret_value()
    app = ReconCelery(settings, broker=redis_url, backend=redis_url, include=["tasks.reconcile"])
    transport = {
        "visibility_timeout": settings.visibility_timeout,
        # kombu looks for messages of lost workers every interval x throttle seconds (100 s by default); a
        # sweep is one cheap sorted-set range query, so look about four times per visibility timeout.
        "unacked_restore_interval": max(1, min(60, settings.visibility_timeout // 4)),
        "unacked_restore_throttle": 1,
    }
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_time_limit,
        task_time_limit=settings.task_time_limit,
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        result_expires=settings.result_expires,
        result_extended=False,
        task_track_started=True,  # `recon reconcile --queue` tells a queued run from a running one
        task_default_queue="recon.default",
        # Each queue has its own exchange and routing key: a message restored after a lost worker goes back to the
        # queue it came from (with the default key it went to recon.default, which a venue's workers may not serve).
        task_queues=[Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES],
        task_default_exchange="recon.default",
        task_default_routing_key="recon.default",
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        broker_connection_retry_on_startup=True,
        # a late-acked task cannot be acked once the broker connection is lost: it will be redelivered, so stop it
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_send_task_events=True,
        task_send_sent_event=True,
    )
    fleet = fleet_of(settings)
    app.conf.beat_schedule = beat_schedule(fleet, float(settings.recover_seconds)) if fleet else {}
    return app


def settings_of(app: Celery) -> Settings:
    """The settings an app was created with."""
    settings = getattr(app, "recon_settings", None)
    if not isinstance(settings, Settings):
        raise FixConfiguration("this Celery app was not created by workers.celery.create_app")
    return settings


app = create_app()
