"""Celery task entry points (parse arguments, call ``workers``' run orchestrator, map errors to retries).

Nothing imports this package except Celery, by task name. The tasks arrive with the distributed runtime;
until then runs execute in-process through ``workers.orchestrator``.
"""
