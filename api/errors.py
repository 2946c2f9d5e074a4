"""One error shape for every answer that is not a success: ``{"error": {"code", "message"}}``.

The message says what to do; it never carries a stack trace, a secret or SQL text. The project's own errors map
to statuses by what the caller must do: fix the request (4xx) or retry later (503).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from reconciliation.errors import ReconError, RetryLater

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer other than success, with its status, a stable code and a message for people."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_found(message: str) -> ApiError:
    """404: no such bot, account or run."""
    return ApiError(404, "not_found", message)


def forbidden(message: str) -> ApiError:
    """403: the token may not do this."""
    return ApiError(403, "forbidden", message)


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The one error shape."""
    return {"error": {"code": code, "message": message}}


def install_error_handlers(app: FastAPI) -> None:
    """Answer every failure in the one shape."""
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(ReconError, _recon_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _internal_error)


def _api_error(_: Request, error: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse(error_body(error.code, error.message), status_code=error.status, headers=headers)


def _invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
    first = error.errors()[0] if error.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path"))
    says = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    message = f"{where}: {says}" if where else says
    return JSONResponse(error_body("invalid_request", message), status_code=422)


def _http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
    message = "no such page or endpoint" if error.status_code == 404 else str(error.detail)
    return JSONResponse(error_body(code, message), status_code=error.status_code, headers=error.headers)


def _recon_error(_: Request, error: ReconError) -> JSONResponse:
    if isinstance(error, RetryLater):
        return JSONResponse(error_body("unavailable", str(error)), status_code=503, headers={"Retry-After": "5"})
    return JSONResponse(error_body("invalid_request", str(error)), status_code=422)


def _internal_error(_: Request, error: Exception) -> JSONResponse:
    log.error("internal error answering a request", exc_info=error)
    return JSONResponse(error_body("internal", "internal error; the server's log has the details"), status_code=500)
