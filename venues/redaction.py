"""Keeping credentials inside the adapters: out of error texts, kept causes, logs and reprs.

A venue may echo what it was sent (Bybit repeats the signed string, key included, in some errors; Alpaca names
the key it refused), and an SDK's errors hold the request that was sent, headers and all. A ``Redactor``
knows one account's key and secret and the forms they travel in (as sent, URL-encoded, JSON-escaped) and
replaces every occurrence with ``***``; ``stripped`` empties an SDK error of the request and response objects it
carries, so that the cause an adapter keeps says what happened without holding anything to leak.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, quote_plus

import requests

from reconciliation.errors import ReconError
from venues.credentials import Credentials

MASK = "***"


class Redactor:
    """Replaces one account's key and secret, in every form a venue might echo them, with ``***``."""

    def __init__(self, credentials: Credentials) -> None:
        forms = {form for secret in (credentials.key, credentials.secret) for form in _forms(secret.reveal()) if form}
        alternatives = sorted(forms, key=len, reverse=True)  # longest first: an encoded form contains the plain one
        self._pattern = re.compile("|".join(map(re.escape, alternatives)), re.IGNORECASE) if alternatives else None

    def __repr__(self) -> str:
        return "Redactor(***)"

    def text(self, value: object) -> str:
        """``str(value)`` with the key and secret masked."""
        shown = str(value)
        return self._pattern.sub(MASK, shown) if self._pattern is not None else shown

    @contextmanager
    def scrubbed(self) -> Iterator[None]:
        """Let errors through with the key and secret masked in their messages (venues echo what they were sent)."""
        try:
            yield
        except ReconError as error:
            error.args = tuple(self.text(arg) if isinstance(arg, str) else arg for arg in error.args)
            raise

    def stripped(self, error: BaseException, message: str | None = None) -> BaseException:
        """``error`` emptied, in place, of what can carry credentials; returned to be kept as a cause.

        Its message becomes ``message`` (else its own text), masked. Requests and responses are dropped or
        replaced by a bare response holding only the status and headers, other attributes masked. Its own cause,
        context and traceback go: they are the SDK's internals, whose frames hold the request headers as locals.
        """
        error.args = (self.text(str(error) if message is None else message),)
        for name, value in list(vars(error).items()):
            vars(error)[name] = self._plain(value)
        error.__cause__ = error.__context__ = None
        error.__suppress_context__ = True
        error.__traceback__ = None
        return error

    def _plain(self, value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, requests.Response):
            return self._bare(value)
        if isinstance(value, BaseException):
            return self.stripped(value)
        if isinstance(value, Mapping):
            return {self.text(key): self.text(item) for key, item in value.items()}
        return None  # a request, a session, a connection pool: nothing a kept cause needs

    def _bare(self, response: requests.Response) -> requests.Response:
        """A response with the status and (masked) headers of ``response`` and nothing else: no request, no body."""
        bare = requests.Response()
        bare.status_code = response.status_code
        bare.reason = self.text(response.reason or "")
        bare.headers.update({self.text(key): self.text(value) for key, value in response.headers.items()})
        return bare

    def logger(self, logger: logging.Logger) -> logging.LoggerAdapter[logging.Logger]:
        """``logger`` with every message masked, for an SDK that logs what a venue answered."""
        return _MaskingLogger(logger, self)


class _MaskingLogger(logging.LoggerAdapter[logging.Logger]):
    def __init__(self, logger: logging.Logger, redactor: Redactor) -> None:
        super().__init__(logger, {})
        self._redactor = redactor

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        return self._redactor.text(msg), kwargs  # pybit formats its messages itself: there are no arguments


def _forms(value: str) -> tuple[str, ...]:
    """How ``value`` may appear in an echo: as sent, URL-encoded (both ways) and as a JSON string's content."""
    return (value, quote(value, safe=""), quote(value), quote_plus(value), json.dumps(value)[1:-1])
