"""Domain objects -> API schemas (the only place that knows both)."""

from __future__ import annotations

from urllib.parse import quote

from ..detect import Match
from ..index import CatalogRecord
from . import schemas
from .checking import CheckFailure, CheckOutcome
from .evidence import Region, outline_box
from .state import ServiceState


def item_image_url(item_id: str) -> str:
    return f"/v1/catalogue/items/{quote(item_id, safe='')}/image"


def evidence_url(verdict_id: str) -> str:
    return f"/v1/verdicts/{verdict_id}/evidence.png"


def model_info(state: ServiceState) -> schemas.ModelInfo:
    embedder = state.detector.embedder
    fingerprint = embedder.fingerprint
    return schemas.ModelInfo(
        name=fingerprint.name,
        weights_sha256=fingerprint.weights_sha256,
        dim=fingerprint.dim,
        trained=embedder.trained,
        precision=embedder.active_precision,
    )


def index_info(state: ServiceState) -> schemas.IndexInfo:
    index = state.detector.index
    return schemas.IndexInfo(
        snapshot=state.catalogue.version.snapshot, items=len(index), factory=index.factory
    )


def check_response(state: ServiceState, outcome: CheckOutcome) -> schemas.CheckResponse:
    verdict = outcome.verdict
    matches = [
        schemas.MatchOut(
            item_id=match.item_id,
            score=match.score,
            brand=match.brand,
            kind=match.kind,
            sku=match.sku,
            sha256=match.sha256,
            region=_region(region),
            inliers=match.inliers,
            agreement=match.agreement,
            transform=match.transform,
            image_url=item_image_url(match.item_id),
        )
        for match, region in zip(verdict.matches, outcome.regions, strict=True)
    ]
    logos = [_logo_out(logo, outcome.listing_size) for logo in verdict.logos]
    timing = outcome.timing
    return schemas.CheckResponse(
        verdict_id=outcome.verdict_id,
        label=verdict.label,
        score=verdict.score,
        expected_precision=verdict.expected_precision,
        listing_id=outcome.listing_id,
        seller_id=outcome.seller_id,
        listing_size=schemas.Size(width=outcome.listing_size[0], height=outcome.listing_size[1]),
        basis=verdict.basis,
        matches=matches,
        logos=logos,
        model=model_info(state),
        index=index_info(state),
        timing=schemas.Timing(
            decode_ms=timing.decode_ms,
            queue_ms=timing.queue_ms,
            inference_ms=timing.inference_ms,
            total_ms=timing.total_ms,
            batch_size=timing.batch_size,
        ),
        evidence_url=evidence_url(outcome.verdict_id),
    )


def _logo_out(match: Match, listing_size: tuple[int, int]) -> schemas.LogoOut:
    outline = [(float(x), float(y)) for x, y in match.region or ()]
    return schemas.LogoOut(
        item_id=match.item_id,
        brand=match.brand,
        score=match.score,
        expected_precision=match.expected_precision,
        inliers=match.inliers or 0,
        agreement=match.agreement or 0.0,
        region=_region(outline_box(outline, listing_size)),
        outline=outline,
        outline_from=match.region_source,
    )


def batch_response(
    state: ServiceState, results: list[CheckOutcome | CheckFailure]
) -> schemas.BatchResponse:
    items = []
    for position, result in enumerate(results):
        if isinstance(result, CheckFailure):
            error = schemas.ErrorDetail(code=result.error.code, message=result.error.message)
            items.append(
                schemas.BatchItem(
                    position=position,
                    filename=result.filename,
                    status=result.error.status,
                    error=error,
                )
            )
        else:
            items.append(
                schemas.BatchItem(
                    position=position,
                    filename=result.filename,
                    status=200,
                    result=check_response(state, result),
                )
            )
    errors = sum(1 for item in items if item.error is not None)
    return schemas.BatchResponse(count=len(items), errors=errors, results=items)


def catalog_item(record: CatalogRecord) -> schemas.CatalogItemOut:
    return schemas.CatalogItemOut(
        item_id=record.item_id,
        sha256=record.sha256,
        brand=record.brand,
        kind=record.kind,
        sku=record.sku,
        added_at=record.added_at,
        image_url=item_image_url(record.item_id),
    )


def _region(region: Region | None) -> schemas.Region | None:
    if region is None:
        return None
    return schemas.Region(x=region.x, y=region.y, width=region.width, height=region.height)
