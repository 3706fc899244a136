"""Catalogue admin: add (admin), get, list, image, stats (moderator), delete (admin)."""

from __future__ import annotations

import mimetypes
from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import FileResponse

from .. import views
from ..auth import Admin, Moderator
from ..catalogue import NewItem
from ..schemas import CatalogItemOut, CatalogPage, DeletedItem, IndexStats
from ..state import State
from ..uploads import read_upload
from .common import AUTH_ERRORS, IMAGE_ERRORS, error_responses

router = APIRouter(prefix="/v1/catalogue", tags=["catalogue"])

Kind = Literal["product", "logo"]
ITEM_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"


@router.post(
    "/items",
    status_code=201,
    summary="Add a catalogue image",
    description="Stores the image, indexes it and saves a new index snapshot before answering: "
    "the next check sees it, and it survives a restart. Without `item_id` the id is the first "
    "16 hex digits of the image's SHA-256.",
    response_model=CatalogItemOut,
    responses=error_responses(*AUTH_ERRORS, *IMAGE_ERRORS, 409),
)
async def add_item(
    key: Admin,
    state: State,
    image: Annotated[UploadFile, File(description="The authentic catalogue photo.")],
    brand: Annotated[str | None, Form(max_length=200)] = None,
    kind: Annotated[Kind, Form()] = "product",
    sku: Annotated[str | None, Form(max_length=200)] = None,
    item_id: Annotated[
        str | None, Form(pattern=ITEM_ID_PATTERN, description="Default: from the SHA-256.")
    ] = None,
) -> CatalogItemOut:
    data = await read_upload(image, state.settings)
    record = await state.catalogue.add(data, NewItem(item_id or None, brand, kind, sku))
    return views.catalog_item(record)


@router.get(
    "/items",
    summary="List catalogue items",
    description="In insertion order, paged; optionally only one brand and/or kind.",
    response_model=CatalogPage,
    responses=error_responses(*AUTH_ERRORS, 422),
)
async def list_items(
    key: Moderator,
    state: State,
    brand: str | None = None,
    kind: Kind | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CatalogPage:
    records, next_offset = state.catalogue.page(brand=brand, kind=kind, limit=limit, offset=offset)
    items = [views.catalog_item(record) for record in records]
    return CatalogPage(items=items, limit=limit, offset=offset, next_offset=next_offset)


@router.get(
    "/items/{item_id}",
    summary="One catalogue item",
    response_model=CatalogItemOut,
    responses=error_responses(*AUTH_ERRORS, 404),
)
async def get_item(item_id: str, key: Moderator, state: State) -> CatalogItemOut:
    return views.catalog_item(state.catalogue.get(item_id))


@router.get(
    "/items/{item_id}/image",
    summary="A catalogue item's image file",
    response_class=FileResponse,
    responses={
        200: {"content": {"image/*": {}}, "description": "The stored image."},
        **error_responses(*AUTH_ERRORS, 404),
    },
)
async def get_item_image(item_id: str, key: Moderator, state: State) -> FileResponse:
    path = state.catalogue.image_path(item_id)
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private"})


@router.delete(
    "/items/{item_id}",
    summary="Remove a catalogue item",
    description="Saved as a new snapshot before answering; checks stop matching it at once.",
    response_model=DeletedItem,
    responses=error_responses(*AUTH_ERRORS, 404),
)
async def delete_item(item_id: str, key: Admin, state: State) -> DeletedItem:
    record = await state.catalogue.remove(item_id)
    return DeletedItem(
        removed=views.catalog_item(record), snapshot=state.catalogue.version.snapshot
    )


@router.get(
    "/stats",
    summary="Index statistics",
    response_model=IndexStats,
    responses=error_responses(*AUTH_ERRORS),
)
async def stats(key: Moderator, state: State) -> IndexStats:
    return IndexStats(**state.catalogue.stats())
