"""POST /v1/check and /v1/check/batch."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from .. import views
from ..auth import Moderator, charge
from ..schemas import BatchResponse, CheckResponse
from ..state import State
from ..uploads import read_listing, read_listings
from .common import AUTH_ERRORS, IMAGE_ERRORS, error_responses, image_body

router = APIRouter(prefix="/v1", tags=["checks"])

ListingId = Annotated[
    str | None, Query(max_length=200, description="Your listing's id, echoed back.")
]
SellerId = Annotated[str | None, Query(max_length=200, description="The seller's id, echoed.")]


@router.post(
    "/check",
    summary="Check one listing photo",
    description="Multipart upload (file field `image`, optional `listing_id`, `seller_id`) or "
    "the raw image as the body. Returns the verdict, its matches and an evidence link.",
    response_model=CheckResponse,
    responses=error_responses(*AUTH_ERRORS, *IMAGE_ERRORS),
    openapi_extra=image_body(batch=False),
)
async def check(
    request: Request,
    key: Moderator,
    state: State,
    listing_id: ListingId = None,
    seller_id: SellerId = None,
) -> CheckResponse:
    upload = await read_listing(request, state.settings, listing_id=listing_id, seller_id=seller_id)
    return views.check_response(state, await state.checks.check(upload))


@router.post(
    "/check/batch",
    summary="Check several listing photos",
    description="Multipart with one file field `images` per photo (at most the configured "
    "batch size). A bad image gets its own error entry; the others are still checked.",
    response_model=BatchResponse,
    responses=error_responses(*AUTH_ERRORS, *IMAGE_ERRORS),
    openapi_extra=image_body(batch=True),
)
async def check_batch(request: Request, key: Moderator, state: State) -> BatchResponse:
    uploads = await read_listings(request, state.settings)
    charge(state, key, len(uploads) - 1)  # one token per image; the first was paid already
    return views.batch_response(state, await state.checks.check_batch(uploads))
