"""The Celery app: ``celery -A workers worker|beat|flower`` finds it here as ``workers.celery:app``.

Configured from one settings object (``RECON_*``): Redis or RabbitMQ as message broker (``RECON_BROKER_URL``,
default Redis at ``RECON_REDIS_URL``), small expiring results in Redis, late acks with reject-on-worker-lost and
prefetch 1 so no work is lost, nested time limits, a queue per venue, and beat's schedule from the fleet file,
kept in Redis behind a lock so that two beats can run and one sends. Tasks live in ``tasks`` and are included by
name only.

On RabbitMQ the queues are quorum queues, each behind its own topic exchange:

- a quorum queue is RabbitMQ's durable, replicated queue type (classic queues are not replicated, and their
  mirroring is gone in RabbitMQ 4), with publisher confirms the message of a sent task survives a broker node;
- our retries (``countdown``) and rechecks (``eta``) then wait in RabbitMQ itself (Celery's native delayed
  delivery for quorum queues, which needs topic or fanout exchanges), not unacknowledged in a worker's memory as
  on Redis or classic queues, where RabbitMQ's ``consumer_timeout`` (30 min by default) closes the channel of a
  worker holding one longer;
- like a classic queue, a quorum queue gives a dead worker's unacknowledged message back as soon as its connection
  closes: there is no visibility timeout to wait out, as on Redis. The server's ``consumer_timeout`` must exceed
  ``RECON_TASK_TIME_LIMIT`` (a late-acked task is unacknowledged while it runs); ``RECON_VISIBILITY_TIMEOUT`` is
  Redis's alone.

Native delayed delivery counts whole seconds and Celery refuses a delay under one second (``ValueError``):
``workers.triggers.send_task`` sends an ETA as a countdown rounded up to whole seconds; our retries wait at least
a second. A retry names the queue its message came from (``delivered_from``). A queue's type cannot change once
declared: switching a vhost from classic queues means deleting ours first (see docs/operations.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from kombu.entity import Exchange, Queue
from kombu.transport.native_delayed_delivery import MAX_NUMBER_OF_BITS_TO_USE

from reconciliation.errors import FixConfiguration
from workers.fleet import fleet_of
from workers.schedule import QUEUES, beat_schedule
from workers.settings import Settings, load_settings

CeleryApp = Celery  # the app's type, for modules outside workers/ that hold one (the API sends tasks through it)


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
    app = ReconCelery(settings, broker=settings.broker, backend=redis_url, include=["tasks.reconcile"])
    redis_transport = {
        "visibility_timeout": settings.visibility_timeout,
        # kombu looks for messages of lost workers every interval x throttle seconds (100 s by default); a
        # sweep is one cheap sorted-set range query, so look about four times per visibility timeout.
        "unacked_restore_interval": max(1, min(60, settings.visibility_timeout // 4)),
        "unacked_restore_throttle": 1,
    }
    if settings.broker_is_rabbitmq:
        # quorum queues behind topic exchanges (why: the module's docstring); a send returns once RabbitMQ has
        # the message (publisher confirms)
        exchange_type, queue_arguments = "topic", {"x-queue-type": "quorum"}
        broker_transport: dict[str, Any] = {"confirm_publish": True}
        app.conf.update(task_default_queue_type="quorum", broker_native_delayed_delivery_queue_type="quorum")
    else:
        exchange_type, queue_arguments, broker_transport = "direct", None, redis_transport
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_time_limit,
        task_time_limit=settings.task_time_limit,
        broker_transport_options=broker_transport,
        result_backend_transport_options=redis_transport,
        result_expires=settings.result_expires,
        result_extended=False,
        task_track_started=True,  # `recon reconcile --queue` tells a queued run from a running one
        task_default_queue="recon.default",
        # Each queue has its own exchange and routing key: a message restored after a lost worker goes back to the
        # queue it came from (with the default key it went to recon.default, which a venue's workers may not serve).
        task_queues=[
            Queue(name, Exchange(name, type=exchange_type), routing_key=name, queue_arguments=queue_arguments)
            for name in QUEUES
        ],
        task_default_exchange="recon.default",
        task_default_exchange_type=exchange_type,
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
        # Beat's schedule lives in Redis behind a lock (celery-redbeat): any number of beats may run, one sends.
        # Each entry's last send is saved before it is sent, so a beat killed mid-send loses at most that one
        # send and the next leader never repeats it; the leader renews the lock every loop.
        beat_scheduler="workers.beat:Scheduler",
        beat_max_loop_interval=max(1, settings.beat_lock_timeout // 6),
        redbeat_redis_url=redis_url,
        redbeat_redis_options={},
        redbeat_key_prefix="recon:beat:",
        redbeat_lock_timeout=settings.beat_lock_timeout,
    )
    fleet = fleet_of(settings)
    app.conf.beat_schedule = beat_schedule(fleet, float(settings.recover_seconds), datetime.now(UTC)) if fleet else {}
    return app


#: what native delayed delivery puts before a delayed message's routing key: the delay, one bit per word
DELAY_PREFIX = re.compile(rf"^(?:[01]\.){{{MAX_NUMBER_OF_BITS_TO_USE}}}")


def delivered_from(delivery_info: Mapping[str, Any] | None) -> str | None:
    """The queue of ours a task's message came from (each queue's routing key is its name), or None.

    A retry must name it: Celery routes a retry delayed by RabbitMQ by the default queue's key, so a venue's task
    retried with a countdown would land on recon.default."""
    key = DELAY_PREFIX.sub("", str((delivery_info or {}).get("routing_key") or ""), count=1)
    return key if key in QUEUES else None


def settings_of(app: Celery) -> Settings:
    """The settings an app was created with."""
    settings = getattr(app, "recon_settings", None)
    if not isinstance(settings, Settings):
        raise FixConfiguration("this Celery app was not created by workers.celery.create_app")
    return settings


app = create_app(load_settings())  # a bad RECON_* value is one line naming it (FixConfiguration), at import
