"""Reading listing images out of requests: multipart uploads or a raw image body.

The body size is already bounded by ``BodySizeLimit``; here each image is bounded too, and
anything that is not an image upload gets a 415 that says what to send instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import ApiError
from .settings import Settings

MAX_ID_CHARS = 200
_RAW_TYPES = ("image/", "application/octet-stream")
_HOW_TO_SEND = (
    "send the image as multipart/form-data (file field 'image') or as the raw request body "
    "with an image/* Content-Type"
)


@dataclass(frozen=True)
class ListingUpload:
    data: bytes
    filename: str | None
    listing_id: str | None
    seller_id: str | None


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_listing(
    request: Request, settings: Settings, *, listing_id: str | None, seller_id: str | None
) -> ListingUpload:
    """One image: a multipart field ``image`` (ids as form fields or query parameters) or the
    raw body (ids as query parameters)."""
    kind = media_type(request)
    if kind == "multipart/form-data":
        form = await _form(request, settings)
        files = _files(form, ("image", "file"))
        if not files:
            raise ApiError(422, "missing_image", "no file field 'image' in the form")
        if len(files) > 1:
            raise ApiError(422, "too_many_images", "one image per /v1/check; use /v1/check/batch")
        return ListingUpload(
            await _read_file(files[0], settings),
            files[0].filename,
            _text_field(form, "listing_id") or _checked_id(listing_id, "listing_id"),
            _text_field(form, "seller_id") or _checked_id(seller_id, "seller_id"),
        )
    if kind.startswith(_RAW_TYPES):
        body = await request.body()
        if len(body) > settings.max_image_bytes:
            raise _image_too_large(len(body), settings)
        return ListingUpload(
            body,
            None,
            _checked_id(listing_id, "listing_id"),
            _checked_id(seller_id, "seller_id"),
        )
    message = f"Content-Type {kind or 'missing'}: {_HOW_TO_SEND}"
    raise ApiError(415, "unsupported_media_type", message)


async def read_listings(request: Request, settings: Settings) -> list[ListingUpload]:
    """Several images: repeated multipart file fields ``images``; optional ``listing_id``
    fields, one per image in the same order; ``seller_id`` once for all or once per image."""
    kind = media_type(request)
    if kind != "multipart/form-data":
        raise ApiError(
            415,
            "unsupported_media_type",
            "a batch is multipart/form-data with one file field 'images' per image",
        )
    form = await _form(request, settings)
    files = _files(form, ("images", "image"))
    if not files:
        raise ApiError(422, "missing_image", "no file fields 'images' in the form")
    if len(files) > settings.max_batch_images:
        raise ApiError(
            422,
            "batch_too_large",
            f"{len(files)} images; a batch holds at most {settings.max_batch_images}",
        )
    listing_ids = _aligned(form, "listing_id", len(files), allow_one=False)
    seller_ids = _aligned(form, "seller_id", len(files), allow_one=True)
    return [
        ListingUpload(await _read_file(file, settings), file.filename, listing, seller)
        for file, listing, seller in zip(files, listing_ids, seller_ids, strict=True)
    ]


async def read_upload(file: UploadFile, settings: Settings) -> bytes:
    """An already parsed upload (a FastAPI ``File`` parameter), bounded and type-checked."""
    return await _read_file(file, settings)


# -- helpers ------------------------------------------------------------------------------------


async def _form(request: Request, settings: Settings) -> FormData:
    try:
        return await request.form(
            # Generous: the batch size check below gives the clearer message.
            max_files=settings.max_batch_images * 4 + 4,
            max_fields=settings.max_batch_images * 2 + 16,
            max_part_size=64 * 1024,  # text fields only; files are bounded by _read_file
        )
    except StarletteHTTPException as exc:
        raise ApiError(400, "bad_multipart", f"malformed multipart body: {exc.detail}") from exc


def _files(form: FormData, names: tuple[str, ...]) -> list[UploadFile]:
    found: list[UploadFile] = []
    for name in names:
        for value in form.getlist(name):
            if not isinstance(value, UploadFile):
                raise ApiError(422, "missing_image", f"form field {name!r} must be a file")
            found.append(value)
    return found


async def _read_file(file: UploadFile, settings: Settings) -> bytes:
    declared = (file.content_type or "").split(";", 1)[0].strip().lower()
    if declared and not declared.startswith(_RAW_TYPES):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"file {file.filename!r} is {declared}; send an image (JPEG, PNG, WebP, ...)",
        )
    data = await file.read(settings.max_image_bytes + 1)
    if len(data) > settings.max_image_bytes:
        raise _image_too_large(None, settings)
    return data


def _image_too_large(size: int | None, settings: Settings) -> ApiError:
    shown = f"{size:,} bytes" if size is not None else "over the limit"
    return ApiError(
        413,
        "image_too_large",
        f"image is too large ({shown}; the limit is {settings.max_image_bytes:,} bytes)",
    )


def _text_field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(422, "invalid_request", f"form field {name!r} must be text")
    return _checked_id(value, name)


def _checked_id(value: str | None, name: str) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > MAX_ID_CHARS:
        raise ApiError(422, "invalid_request", f"{name} is longer than {MAX_ID_CHARS} characters")
    return value


def _aligned(form: FormData, name: str, count: int, *, allow_one: bool) -> list[str | None]:
    values: list[str | None] = []
    for value in form.getlist(name):
        if not isinstance(value, str):
            raise ApiError(422, "invalid_request", f"form field {name!r} must be text")
        values.append(_checked_id(value, name))
    if not values:
        return [None] * count
    if allow_one and len(values) == 1:
        return values * count
    if len(values) != count:
        raise ApiError(
            422, "invalid_request", f"{len(values)} {name} fields for {count} images: give one each"
        )
    return values
