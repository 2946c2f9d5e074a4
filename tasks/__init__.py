"""Celery task entry points: check the arguments, call ``workers``' service, map transient failures to retries.

Nothing imports this package except Celery, by task name (``workers.celery`` includes ``tasks.reconcile``).
"""
