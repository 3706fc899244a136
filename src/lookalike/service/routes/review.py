"""The review page for moderators (static HTML; it calls the API with the moderator's key)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse

router = APIRouter(tags=["review"])


@cache
def _page() -> str:
    return resources.files("lookalike.service").joinpath("static", "review.html").read_text()


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/review")


@router.get(
    "/review",
    summary="Review page",
    description="Upload a listing photo, see the verdict, the listing beside its matched "
    "catalogue images with the region outlined, and the evidence image.",
    response_class=HTMLResponse,
)
async def review_page() -> HTMLResponse:
    # The page embeds no data: everything it shows comes from API calls made with the key
    # the moderator types in, so serving it openly reveals nothing.
    return HTMLResponse(_page(), headers={"Cache-Control": "no-cache"})
