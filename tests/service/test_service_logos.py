"""Logo search through the HTTP API: a listing showing a catalogue logo gets its logo, its
outline in listing pixels, and an evidence picture with the logo outlined.

The logo model has random weights (no trained descriptor is needed to test the plumbing), so
every logo is verified on whole-photo windows, as in the library's logo tests."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from service_support import AppClient, ServiceEnv, encode, post_image

from logo_helpers import (
    build_catalog,
    corner_error,
    draw_logos,
    one_torch_thread,
    paste_logo,
    verify_all,
    write_logo_model,
)
from lookalike.evidence import GAP, MARGIN, TILE
from lookalike.logos.catalog import logo_index_dir


@pytest.fixture
def logo_client(service_env: ServiceEnv, make_client: AppClient, tmp_path: Path) -> TestClient:
    catalog = build_catalog(write_logo_model(tmp_path / "logo.pt"), tmp_path / "logo-files")
    catalog.save(logo_index_dir(service_env.index_dir))
    client = make_client()
    state = client.app.state.service  # type: ignore[attr-defined]
    assert state.detector.logo_matcher is not None, "the index's logos were not loaded"
    state.detector.logo_matcher.config = verify_all()
    state.checks.preprocessor = state.detector.preprocessor  # windows of that config
    return client


def test_a_listing_showing_a_logo_gets_it_with_its_outline(
    logo_client: TestClient, service_env: ServiceEnv
) -> None:
    photo, box = paste_logo(draw_logos()["badge"], (400, 400))
    with one_torch_thread():
        response = post_image(logo_client, encode(photo, quality=92), service_env.moderator)
    assert response.status_code == 200, response.text
    body = response.json()
    best = body["logos"][0]
    assert best["item_id"] == "badge" and best["brand"] == "acme"
    assert best["inliers"] >= 8 or best["agreement"] >= 0.8
    assert corner_error([tuple(p) for p in best["outline"]], box) <= 0.1 * (box[2] - box[0])
    assert best["outline_from"] in ("keypoints", "outline")
    region = best["region"]
    assert 0 <= region["x"] <= box[0] + 8 and region["x"] + region["width"] <= 400
    if body["basis"] == "logo":
        assert body["label"] in {"logo", "review"} and body["score"] == best["score"]
    else:
        assert body["label"] in {"copy", "review", "clear"}


def test_the_evidence_picture_outlines_the_logo(
    logo_client: TestClient, service_env: ServiceEnv
) -> None:
    photo, _ = paste_logo(draw_logos()["shapes"], (400, 400))
    with one_torch_thread():
        body = post_image(logo_client, encode(photo, quality=92), service_env.moderator).json()
    assert body["logos"], body
    png = logo_client.get(body["evidence_url"], headers=service_env.moderator)
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    picture = Image.open(io.BytesIO(png.content))
    # the library's layout (listing beside the clean logo), not the photo-match strip
    assert picture.width == MARGIN + TILE + GAP + TILE + MARGIN


def test_without_logos_in_the_index_the_api_is_unchanged(
    client: TestClient, service_env: ServiceEnv
) -> None:
    photo, _ = paste_logo(draw_logos()["badge"], (400, 400))
    body = post_image(client, encode(photo, quality=92), service_env.moderator).json()
    assert body["logos"] == [] and body["basis"] == "photo"
