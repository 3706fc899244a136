"""The review page end to end: a real server (uvicorn, loopback) and headless Chromium.

Skipped cleanly when Debian's chromium or the playwright package is absent (`.ci/run`
installs both). Chromium is the system one: nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from service_support import STRICT_THRESHOLDS, ServiceEnv, encode, listing_jpeg

from lookalike.data.synthetic import synthetic_image
from lookalike.service import create_app

CHROMIUM = Path(os.environ.get("LOOKALIKE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None, reason="playwright is not installed"
    ),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live_server(service_env: ServiceEnv) -> Iterator[str]:
    """The app under uvicorn in a background thread on a free loopback port."""
    app = create_app(service_env.settings(**STRICT_THRESHOLDS), embedder=service_env.embedder)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_review_page_shows_verdict_listing_matches_and_region(
    live_server: str, service_env: ServiceEnv, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    copy_path = tmp_path / "listing.jpg"
    copy_path.write_bytes(listing_jpeg(2, (400, 300)))
    unrelated_path = tmp_path / "unrelated.jpg"
    unrelated_path.write_bytes(listing_jpeg(117))
    not_image = tmp_path / "notes.jpg"
    not_image.write_bytes(b"this is not a photo")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{live_server}/review")
            page.get_by_test_id("api-key").fill(service_env.moderator_key)
            page.get_by_test_id("listing-file").set_input_files(str(copy_path))
            page.get_by_test_id("listing-id").fill("L-42")
            page.get_by_test_id("check-button").click()

            expect(page.get_by_test_id("result")).to_be_visible(timeout=30_000)
            expect(page.get_by_test_id("label")).to_have_text("copy")
            # A number from the model's calibration ("uncalibrated" for a model without one).
            expect(page.get_by_test_id("precision")).to_have_text(
                re.compile(r"^(0|1)\.\d+|uncalibrated")
            )
            expect(page.get_by_test_id("versions")).to_contain_text("snapshot-")

            # The listing and its matched catalogue images side by side.
            listing = page.get_by_test_id("listing-image")
            expect(listing).to_be_visible()
            matches = page.get_by_test_id("match")
            expect(matches).to_have_count(3)
            expect(page.get_by_test_id("match-caption").first).to_contain_text("item002")
            expect(page.get_by_test_id("match-caption").first).to_contain_text("acme")
            first_image = page.get_by_test_id("match-image").first
            expect(first_image).to_be_visible()
            page.wait_for_function(
                "() => [...document.querySelectorAll('[data-testid=match-image]')]"
                ".every(img => img.complete && img.naturalWidth > 0)"
            )
            listing_box = listing.bounding_box()
            first_box = first_image.bounding_box()
            assert listing_box and first_box and first_box["x"] > listing_box["x"]  # beside it

            # The region (whole listing for photo copies) is outlined over the listing.
            region = page.get_by_test_id("region")
            expect(region).to_be_visible()
            region_box = region.bounding_box()
            assert region_box is not None
            for key in ("x", "y", "width", "height"):
                assert abs(region_box[key] - listing_box[key]) <= 2, key

            evidence = page.get_by_test_id("evidence-image")
            page.wait_for_function(
                "() => { const img = document.querySelector('[data-testid=evidence-image]');"
                " return img.complete && img.naturalWidth > 600; }"
            )
            expect(evidence).to_be_visible()
            page.screenshot(path=str(tmp_path / "review-copy.png"), full_page=True)

            # An unrelated photo: clear, and no region drawn.
            page.get_by_test_id("listing-file").set_input_files(str(unrelated_path))
            page.get_by_test_id("check-button").click()
            expect(page.get_by_test_id("label")).to_have_text("clear", timeout=30_000)
            expect(page.get_by_test_id("region")).to_have_count(0)

            # Bad input: the page shows the API's error, not a broken result.
            page.get_by_test_id("listing-file").set_input_files(str(not_image))
            page.get_by_test_id("check-button").click()
            expect(page.get_by_test_id("status")).to_contain_text(
                "unsupported_image_type", timeout=30_000
            )

            # A wrong key is refused with a clear message.
            page.get_by_test_id("api-key").fill("lk_nope_nope")
            page.get_by_test_id("listing-file").set_input_files(str(copy_path))
            page.get_by_test_id("check-button").click()
            expect(page.get_by_test_id("status")).to_contain_text("invalid_api_key", timeout=30_000)
        finally:
            browser.close()


def test_review_page_catalogue_image_placeholder_when_file_is_gone(
    live_server: str, service_env: ServiceEnv, tmp_path: Path
) -> None:
    """A match whose catalogue file vanished still renders, with a placeholder."""
    import httpx
    from playwright.sync_api import expect, sync_playwright

    data = encode(synthetic_image(55), "PNG")
    added = httpx.post(
        f"{live_server}/v1/catalogue/items",
        files={"image": ("x.png", data, "image/png")},
        data={"item_id": "vanishing"},
        headers=service_env.admin,
    )
    assert added.status_code == 201
    for stored in service_env.catalogue_dir.rglob("*.png"):
        stored.unlink()
    listing = tmp_path / "listing.png"
    listing.write_bytes(data)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{live_server}/review")
            page.get_by_test_id("api-key").fill(service_env.moderator_key)
            page.get_by_test_id("listing-file").set_input_files(str(listing))
            page.get_by_test_id("check-button").click()
            expect(page.get_by_test_id("match-caption").first).to_contain_text(
                "vanishing", timeout=30_000
            )
            expect(page.get_by_text("catalogue image unavailable")).to_be_visible()
        finally:
            browser.close()
