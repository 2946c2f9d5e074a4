"""The runtime around the engine: the settings and the fleet file, the one run pipeline and the service that
serves requests for runs (lock, coalescing, publish, follow-ups), the Celery app and its schedule, the follow-ups
(orders, alerts, backfill, recovery), the JSON reports, and the clients bots import (``workers.books``,
``workers.bot_client``). See docs/architecture.md."""
