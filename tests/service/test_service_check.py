"""POST /v1/check and /v1/check/batch, evidence images, micro-batching, against the real model."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient
from PIL import Image
from service_support import (
    STRICT_THRESHOLDS,
    AppClient,
    ServiceEnv,
    encode,
    listing_jpeg,
    post_image,
    post_raw,
)

from lookalike.data.synthetic import synthetic_image
from lookalike.service.evidence import PAD, TILE


def test_check_multipart_gives_verdict_matches_versions_timing(
    client: TestClient, service_env: ServiceEnv
) -> None:
    response = post_image(
        client,
        listing_jpeg(2, (640, 480)),
        service_env.moderator,
        listing_id="L-1",
        seller_id="S-9",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["label"] == "copy"
    assert body["listing_id"] == "L-1" and body["seller_id"] == "S-9"
    # From the model's calibration; None only for an uncalibrated model.
    precision = body["expected_precision"]
    assert precision is None or 0.0 <= precision <= 1.0
    best = body["matches"][0]
    assert best["item_id"] == "item002" and best["brand"] == "acme" and best["kind"] == "product"
    assert body["score"] == best["score"] >= STRICT_THRESHOLDS["copy_threshold"]
    assert len(body["matches"]) == 5
    # Whole-photo copies: the region is the whole listing, in its own pixels.
    assert body["listing_size"] == {"width": 640, "height": 480}
    assert best["region"] == {"x": 0, "y": 0, "width": 640, "height": 480}
    assert best["image_url"] == "/v1/catalogue/items/item002/image"
    model = body["model"]
    assert model["name"] == "default" and model["dim"] == 256
    assert model["trained"] is service_env.embedder.trained
    assert model["weights_sha256"] == service_env.embedder.fingerprint.weights_sha256
    assert body["index"]["items"] == 5 and body["index"]["snapshot"].startswith("snapshot-")
    timing = body["timing"]
    assert timing["batch_size"] >= 1
    assert 0 < timing["inference_ms"] <= timing["total_ms"]
    assert body["evidence_url"] == f"/v1/verdicts/{body['verdict_id']}/evidence.png"
    assert "source" not in best  # server paths stay on the server


def test_check_raw_body_with_ids_in_query_and_bearer_key(
    client: TestClient, service_env: ServiceEnv
) -> None:
    response = client.post(
        "/v1/check?listing_id=L-2&seller_id=S-1",
        content=listing_jpeg(4),
        headers={"Content-Type": "image/jpeg", "Authorization": f"Bearer {service_env.admin_key}"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["matches"][0]["item_id"] == "item004"
    assert (body["listing_id"], body["seller_id"]) == ("L-2", "S-1")


def test_png_webp_and_octet_stream_bodies_are_accepted(
    client: TestClient, service_env: ServiceEnv
) -> None:
    picture = synthetic_image(1)
    for data, content_type in (
        (encode(picture, "PNG"), "image/png"),
        (encode(picture, "WEBP", quality=95), "image/webp"),
        (encode(picture, "PNG"), "application/octet-stream"),
    ):
        response = post_raw(client, data, service_env.moderator, content_type)
        assert response.status_code == 200, (content_type, response.text)
        assert response.json()["matches"][0]["item_id"] == "item001"


def test_labels_follow_thresholds(make_client: AppClient, service_env: ServiceEnv) -> None:
    client = make_client(**STRICT_THRESHOLDS)
    copy = post_image(client, listing_jpeg(0), service_env.moderator).json()
    unrelated = post_image(client, listing_jpeg(117), service_env.moderator).json()
    assert copy["label"] == "copy"
    assert unrelated["label"] == "clear"
    assert unrelated["score"] < STRICT_THRESHOLDS["review_threshold"]


def test_exif_rotated_listing_reports_its_upright_size(
    client: TestClient, service_env: ServiceEnv
) -> None:
    picture = synthetic_image(3, (300, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    data = encode(picture, quality=90, exif=exif.tobytes())
    body = post_image(client, data, service_env.moderator).json()
    assert body["listing_size"] == {"width": 200, "height": 300}
    assert body["matches"][0]["region"] == {"x": 0, "y": 0, "width": 200, "height": 300}


def test_batch_checks_each_image_and_fails_bad_ones_alone(
    client: TestClient, service_env: ServiceEnv
) -> None:
    files = [
        ("images", ("a.jpg", listing_jpeg(0), "image/jpeg")),
        ("images", ("b.jpg", b"\xff\xd8\xff\xe0 truncated", "image/jpeg")),
        ("images", ("c.png", encode(synthetic_image(3), "PNG"), "image/png")),
    ]
    data = {"listing_id": ["A", "B", "C"], "seller_id": "S-5"}
    response = client.post("/v1/check/batch", files=files, data=data, headers=service_env.moderator)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["count"], body["errors"]) == (3, 1)
    first, bad, third = body["results"]
    assert first["status"] == 200 and first["result"]["matches"][0]["item_id"] == "item000"
    assert first["result"]["listing_id"] == "A" and first["result"]["seller_id"] == "S-5"
    assert bad["status"] in (415, 422) and bad["result"] is None
    assert bad["error"]["code"] in ("unsupported_image_type", "undecodable_image")
    assert third["result"]["matches"][0]["item_id"] == "item003"
    assert third["result"]["listing_id"] == "C" and third["filename"] == "c.png"


def test_batch_limits(make_client: AppClient, service_env: ServiceEnv) -> None:
    client = make_client(max_batch_images=2)
    files = [("images", (f"{n}.jpg", listing_jpeg(n), "image/jpeg")) for n in range(3)]
    response = client.post("/v1/check/batch", files=files, headers=service_env.moderator)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "batch_too_large"

    two = files[:2]
    mismatched = client.post(
        "/v1/check/batch",
        files=two,
        data={"listing_id": ["only-one"]},
        headers=service_env.moderator,
    )
    assert mismatched.status_code == 422
    assert "one each" in mismatched.json()["error"]["message"]

    raw = client.post(
        "/v1/check/batch",
        content=listing_jpeg(0),
        headers={**service_env.moderator, "Content-Type": "image/jpeg"},
    )
    assert raw.status_code == 415

    empty = client.post(
        "/v1/check/batch",
        data={"listing_id": "x"},
        files={"other": ("x", b"1")},
        headers=service_env.moderator,
    )
    assert empty.status_code == 422 and empty.json()["error"]["code"] == "missing_image"


def test_evidence_png_shows_listing_beside_matches(
    make_client: AppClient, service_env: ServiceEnv
) -> None:
    client = make_client(evidence_matches=2)
    verdict = post_image(client, listing_jpeg(1), service_env.moderator, listing_id="L-7").json()
    response = client.get(verdict["evidence_url"], headers=service_env.moderator)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "PNG"
    assert image.width == PAD + 3 * (TILE + PAD)  # the listing and two catalogue images
    # The listing tile carries the region outline in the label's colour (copy: red).
    red = image.convert("RGB").getpixel((PAD + 1, image.height // 2))
    assert isinstance(red, tuple) and red[0] > 150 and red[1] < 80 and red[2] < 80
    # The first match tile shows the catalogue image itself, not a placeholder.
    tile = image.crop((PAD + TILE + PAD, 60, PAD + 2 * TILE + PAD, 60 + TILE - 40))
    assert len(tile.convert("RGB").getcolors(maxcolors=1 << 16) or []) > 20


def test_evidence_needs_a_key_and_a_recent_verdict(
    make_client: AppClient, service_env: ServiceEnv
) -> None:
    client = make_client(evidence_cache_items=2)
    ids = [post_image(client, listing_jpeg(n), service_env.moderator).json() for n in range(3)]
    oldest, newest = ids[0]["evidence_url"], ids[2]["evidence_url"]
    assert client.get(newest).status_code == 401
    assert client.get(newest, headers=service_env.moderator).status_code == 200
    gone = client.get(oldest, headers=service_env.moderator)  # evicted: only 2 are kept
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "verdict_not_found"
    unknown = client.get("/v1/verdicts/nope/evidence.png", headers=service_env.moderator)
    assert unknown.status_code == 404


def test_concurrent_requests_share_forward_passes(
    make_client: AppClient, service_env: ServiceEnv
) -> None:
    client = make_client(max_batch=8, max_wait_ms=300)
    photos = [listing_jpeg(n % 5) for n in range(8)]
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda p: post_image(client, p, service_env.moderator), photos))
    assert all(r.status_code == 200 for r in responses)
    sizes = [r.json()["timing"]["batch_size"] for r in responses]
    assert max(sizes) > 1  # gathered into shared batches
    for response, photo_seed in zip(responses, [n % 5 for n in range(8)], strict=True):
        # ...and every caller got its own image's verdict back.
        assert response.json()["matches"][0]["item_id"] == f"item{photo_seed:03d}"


def test_micro_batching_off_runs_one_image_per_pass(
    make_client: AppClient, service_env: ServiceEnv
) -> None:
    client = make_client(micro_batching=False, max_wait_ms=300)
    with ThreadPoolExecutor(4) as pool:
        responses = list(
            pool.map(lambda n: post_image(client, listing_jpeg(n), service_env.moderator), range(4))
        )
    assert [r.json()["timing"]["batch_size"] for r in responses] == [1, 1, 1, 1]


def test_with_verification_a_pasted_copy_is_outlined_where_it_lies(
    make_client: AppClient, service_env: ServiceEnv
) -> None:
    verified = make_client(verify=True)
    listing = Image.new("RGB", (600, 450), (235, 225, 200))
    listing.paste(synthetic_image(2, (256, 256)), (290, 130))  # item002, a third of the page
    body = post_image(verified, encode(listing, quality=92), service_env.moderator).json()
    best = body["matches"][0]
    assert best["item_id"] == "item002" and best["inliers"] >= 8
    assert 0 < best["agreement"] <= 1 and best["transform"] is None
    region = best["region"]
    assert abs(region["x"] - 290) <= 12 and abs(region["y"] - 130) <= 12
    assert abs(region["width"] - 256) <= 16 and abs(region["height"] - 256) <= 16


def test_by_default_matches_carry_no_keypoint_evidence(
    client: TestClient, service_env: ServiceEnv
) -> None:
    body = post_image(client, listing_jpeg(2), service_env.moderator).json()
    best = body["matches"][0]
    assert best["item_id"] == "item002"
    assert best["inliers"] is None and best["agreement"] is None
    assert best["region"] == {"x": 0, "y": 0, "width": 256, "height": 256}
    assert best["score"] <= 1.0  # a cosine: no keypoint bonus
