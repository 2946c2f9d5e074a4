"""``python -m cli``: the ``recon`` command."""

from cli.app import main

main()
