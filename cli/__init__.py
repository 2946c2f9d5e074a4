"""The ``recon`` command line: parsing, rendering reports for people, and the demo. It calls the same service
the workers run (``workers.service``); nothing here decides anything about the books."""
