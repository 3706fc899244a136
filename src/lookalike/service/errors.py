"""One JSON error shape for every 4xx/5xx: ``{"error": {"code": ..., "message": ...}}``.

Domain errors (bad images, duplicates, timeouts) are mapped to HTTP here, once, so routes
stay thin and bad input can never surface as a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..data.decode import ImageDecodeError
from ..index import DuplicateItemError

log = logging.getLogger("lookalike.service")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "not_ready",
    504: "timeout",
}


class ApiError(Exception):
    """An error with its HTTP status, a stable machine-readable code and a message for people."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


class BodyTooLargeError(Exception):
    """Raised from the request body stream once it passes the configured limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class CheckTimeoutError(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def body_too_large(limit: int) -> ApiError:
    return ApiError(413, "request_too_large", f"request body is over the {limit:,}-byte limit")


def decode_error(exc: ImageDecodeError) -> ApiError:
    """Map the decoder's reason to a status: 415 when the bytes are no image format we read,
    413 when the file is too big, 422 when it is an image we cannot or will not decode."""
    reason = exc.reason
    if reason.startswith("not a supported image"):
        message = "not a supported image: send JPEG, PNG, WebP, GIF, BMP or TIFF"
        return ApiError(415, "unsupported_image_type", message)
    if reason.startswith("too large"):
        return ApiError(413, "image_too_large", f"image {reason}")
    if reason.startswith("too many pixels"):
        return ApiError(422, "too_many_pixels", f"image has {reason}")
    if "empty" in reason:
        return ApiError(422, "empty_image", "the image is empty (0 bytes)")
    return ApiError(422, "undecodable_image", f"cannot decode the image: {reason}")


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _STATUS_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), exc.headers)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
            for err in exc.errors()
        )
        return error_response(422, "invalid_request", problems or "invalid request")

    async def on_decode_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ImageDecodeError)
        api = decode_error(exc)
        return error_response(api.status, api.code, api.message)

    async def on_body_too_large(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, BodyTooLargeError)
        api = body_too_large(exc.limit)
        # The client may still be sending: close the connection rather than read the rest.
        return error_response(api.status, api.code, api.message, {"Connection": "close"})

    async def on_timeout(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, CheckTimeoutError)
        message = f"the check did not finish within {exc.seconds:g} s; try again later"
        return error_response(504, "timeout", message)

    async def on_duplicate(request: Request, exc: Exception) -> JSONResponse:
        return error_response(409, "duplicate_item_id", str(exc))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", "?")
        log.exception("unhandled error", extra={"request_id": request_id})
        message = f"internal error (request id {request_id}); the server log has the details"
        return error_response(500, "internal_error", message)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(ImageDecodeError, on_decode_error)
    app.add_exception_handler(BodyTooLargeError, on_body_too_large)
    app.add_exception_handler(CheckTimeoutError, on_timeout)
    app.add_exception_handler(DuplicateItemError, on_duplicate)
    app.add_exception_handler(Exception, on_unexpected)
