"""API credentials read from the environment variables a fleet file names, never printed.

A ``Secret`` shows as ``'***'`` in repr, str, f-strings, logs and tracebacks; only ``reveal()`` gives the
value, and only the adapters call it, to hand it to an SDK.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from reconciliation.errors import AuthenticationFailed


class Secret:
    """A value that never prints."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The value itself, for the SDK that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Credentials:
    """An API key and secret; both redacted wherever they are shown."""

    key: Secret
    secret: Secret


def credentials_from(environ: Mapping[str, str], key_env: str, secret_env: str) -> Credentials:
    """Credentials from the variables ``key_env`` and ``secret_env``; a missing one is named (not its value)."""
    missing = [name for name in (key_env, secret_env) if not environ.get(name)]
    if missing:
        raise AuthenticationFailed(f"environment variable {missing[0]} is not set (it should hold the API credential)")
    return Credentials(Secret(environ[key_env]), Secret(environ[secret_env]))


def credentials_from_environment(key_env: str, secret_env: str) -> Credentials:
    """``credentials_from`` on this process's environment."""
    return credentials_from(os.environ, key_env, secret_env)
