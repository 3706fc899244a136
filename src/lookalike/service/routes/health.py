"""Open endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from ..errors import ApiError
from ..schemas import Health, Readiness
from ..state import ServiceState
from .common import error_responses

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up", response_model=Health)
async def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    summary="Model and index are loaded; checks can be served",
    response_model=Readiness,
    responses=error_responses(503),
)
async def readyz(request: Request) -> Readiness:
    state: ServiceState | None = getattr(request.app.state, "service", None)
    if state is None or not state.ready:
        raise ApiError(503, "not_ready", "the model and index are still loading")
    return Readiness(
        model=state.detector.embedder.name,
        index_items=len(state.detector.index),
        snapshot=state.catalogue.version.snapshot,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="Requests, latency histogram, inference batch sizes, verdicts by label.",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format."}},
)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics
    return Response(registry.render(), media_type=registry.content_type)
