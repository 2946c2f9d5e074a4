"""The one rule for bot and account names, used by the fleet file, the books, the tasks, the CLI and the API.

A name is 1 to 64 characters: lowercase letters, digits, ``-`` and ``_``, starting with a letter or a digit.
Names become Redis keys, task arguments, log fields and URL path segments, so nothing else is accepted.
"""

from __future__ import annotations

import re

from reconciliation.errors import FixConfiguration

MAX_NAME = 64
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)
RULE = "1 to 64 lowercase letters, digits, '-' or '_', starting with a letter or digit"


def is_name(value: object) -> bool:
    """True when ``value`` is a string following the naming rule."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def check_name(value: object, what: str) -> str:
    """``value`` when it follows the naming rule; otherwise FixConfiguration naming ``what`` (value shortened)."""
    if is_name(value):
        assert isinstance(value, str)
        return value
    return _refuse(value, what)


def shown(value: object, limit: int = 40) -> str:
    """A short, printable rendering of a value that may be huge or hostile (for error messages)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _refuse(value: object, what: str) -> str:
    raise FixConfiguration(f"invalid {what} name {shown(value)}: use {RULE}")
