"""The HTTP front door: an API for bots and operators, the fleet page, and Prometheus metrics (``recon serve``)."""
