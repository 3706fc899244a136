"""GET /v1/verdicts/{verdict_id}/evidence.png."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response

from ..auth import Moderator
from ..errors import ApiError
from ..evidence import render_evidence, render_logo_evidence
from ..state import State
from .common import AUTH_ERRORS, error_responses

router = APIRouter(prefix="/v1", tags=["evidence"])


@router.get(
    "/verdicts/{verdict_id}/evidence.png",
    summary="Evidence image of a recent verdict",
    description="PNG: the listing photo (region outlined) beside its top matched catalogue "
    "images, with scores and brands. Kept for the most recent verdicts only.",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "The evidence image."},
        **error_responses(*AUTH_ERRORS, 404),
    },
)
async def evidence_image(verdict_id: str, key: Moderator, state: State) -> Response:
    entry = state.evidence.get(verdict_id)
    if entry is None:
        raise ApiError(
            404,
            "verdict_not_found",
            f"no evidence for verdict {verdict_id!r}: unknown, or older than the last "
            f"{state.settings.evidence_cache_items} verdicts",
        )
    max_pixels = state.settings.max_image_pixels
    png = None
    if entry.verdict.logos:
        png = await asyncio.to_thread(
            render_logo_evidence, entry, state.detector, max_pixels=max_pixels
        )
    if png is None:
        png = await asyncio.to_thread(
            render_evidence,
            entry,
            max_matches=state.settings.evidence_matches,
            max_pixels=max_pixels,
        )
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})
