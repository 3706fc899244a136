"""OpenAPI pieces shared by the routes: error responses and the image request body."""

from __future__ import annotations

from typing import Any

from ..schemas import ErrorResponse

_DESCRIPTIONS = {
    400: "Malformed request (e.g. a broken multipart body).",
    401: "No API key, or an unknown or revoked one.",
    403: "The key's role may not do this (catalogue changes need `admin`).",
    404: "No such item or verdict.",
    409: "The image or item id is already in the catalogue.",
    413: "Request body or image over the size limit.",
    415: "Not an image upload, or an image format that is not supported.",
    422: "Undecodable image, too many pixels, too many images, or invalid fields.",
    429: "The key is over its rate limit; see Retry-After.",
    503: "The model and index are still loading.",
    504: "The check took longer than the request timeout.",
}

AUTH_ERRORS = (401, 403, 429, 503)
IMAGE_ERRORS = (400, 413, 415, 422, 504)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]}
        for status in statuses
    }


def _binary(description: str) -> dict[str, Any]:
    return {"schema": {"type": "string", "format": "binary", "description": description}}


def image_body(*, batch: bool) -> dict[str, Any]:
    """``openapi_extra`` for routes that parse their own body (multipart or raw image)."""
    if batch:
        form = {
            "type": "object",
            "required": ["images"],
            "properties": {
                "images": {
                    "type": "array",
                    "items": {"type": "string", "format": "binary"},
                    "description": "One file field per image (repeat the field).",
                },
                "listing_id": {
                    "type": "array",
                    "items": {"type": "string", "maxLength": 200},
                    "description": "Optional: one per image, in the same order.",
                },
                "seller_id": {
                    "type": "array",
                    "items": {"type": "string", "maxLength": 200},
                    "description": "Optional: once for all images, or one per image.",
                },
            },
        }
        content = {"multipart/form-data": {"schema": form}}
        return {"requestBody": {"required": True, "content": content}}
    form = {
        "type": "object",
        "required": ["image"],
        "properties": {
            "image": {"type": "string", "format": "binary", "description": "The listing photo."},
            "listing_id": {"type": "string", "maxLength": 200},
            "seller_id": {"type": "string", "maxLength": 200},
        },
    }
    raw = "The listing photo as the whole body; ids go in the query string."
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": form},
                "image/jpeg": _binary(raw),
                "image/png": _binary(raw),
                "image/webp": _binary(raw),
                "application/octet-stream": _binary(raw),
            },
        }
    }
