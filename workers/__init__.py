"""The service around the engine: settings, the fleet file, the run orchestrator, reports, the bots' books
client and the ``recon`` command. (The Celery app, locks and beat schedule join it with the distributed
runtime.)"""
