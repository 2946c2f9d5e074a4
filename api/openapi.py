"""The API's OpenAPI schema as kept in the repo (``docs/openapi.json``); a test checks it against the app's.

python -m api.openapi > docs/openapi.json      # after changing an endpoint
"""

from __future__ import annotations

import json
import sys
from typing import Any

from api.app import create_app
from workers.settings import Settings


def openapi_document() -> dict[str, Any]:
    """The schema the app serves at ``/api/v1/openapi.json`` (it does not depend on settings)."""
    return create_app(Settings()).openapi()


def main() -> None:
    """Print the schema, formatted as kept in the repo."""
    sys.stdout.write(json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
