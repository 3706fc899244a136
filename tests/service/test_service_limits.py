"""Limits and bad input: every case gets a clear 4xx in the one error shape, never a 500."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from service_support import AppClient, ServiceEnv, encode, listing_jpeg, post_image, post_raw

from lookalike.data.synthetic import synthetic_image


def error_code(response: object) -> str:
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    return str(body["error"]["code"])


def test_declared_body_over_the_limit_is_413_before_reading(
    make_client: AppClient, service_env: ServiceEnv
) -> None:
    client = make_client(max_request_bytes=20_000)
    big = encode(synthetic_image(1, (900, 900)), "PNG")
    assert len(big) > 20_000
    response = post_raw(client, big, service_env.moderator)
    assert response.status_code == 413
    assert error_code(response) == "request_too_large"


def test_streamed_body_over_the_limit_is_413(
    make_client: AppClient, service_env: ServiceEnv
) -> None:
    client = make_client(max_request_bytes=20_000)

    # No Content-Length: the limit is enforced while the body streams in.
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"\xff" * 4096

    response = client.post(
        "/v1/check",
        content=chunks(),
        headers={**service_env.moderator, "Content-Type": "image/jpeg"},
    )
    assert response.status_code == 413
    assert error_code(response) == "request_too_large"


def test_image_over_the_per_image_limit_is_413(
    make_client: AppClient, service_env: ServiceEnv
) -> None:
    client = make_client(max_image_bytes=10_000)
    data = encode(synthetic_image(2, (600, 600)), "PNG")
    for response in (
        post_image(client, data, service_env.moderator),
        post_raw(client, data, service_env.moderator),
    ):
        assert response.status_code == 413
        assert error_code(response) == "image_too_large"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b"hello"),
        ("application/json", b'{"image": "x"}'),
        ("", b"\xff\xd8"),
    ],
)
def test_non_image_content_type_is_415(
    client: TestClient, service_env: ServiceEnv, content_type: str, body: bytes
) -> None:
    headers = {**service_env.moderator}
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post("/v1/check", content=body, headers=headers)
    assert response.status_code == 415
    assert error_code(response) == "unsupported_media_type"
    assert "multipart/form-data" in response.json()["error"]["message"]


def test_multipart_part_that_is_not_an_image_is_415(
    client: TestClient, service_env: ServiceEnv
) -> None:
    files = {"image": ("notes.txt", b"just text", "text/plain")}
    response = client.post("/v1/check", files=files, headers=service_env.moderator)
    assert response.status_code == 415
    assert error_code(response) == "unsupported_media_type"


@pytest.mark.parametrize(
    "data",
    [
        b"GIF89a but not really",
        b"<svg xmlns='http://www.w3.org/2000/svg'></svg>",
        b"%PDF-1.4 not an image",
        bytes(range(256)) * 4,
    ],
    ids=["fake-gif", "svg", "pdf", "noise"],
)
def test_bytes_that_are_no_supported_image_are_415(
    client: TestClient, service_env: ServiceEnv, data: bytes
) -> None:
    response = post_raw(client, data, service_env.moderator)
    assert response.status_code in (415, 422)
    assert error_code(response) in ("unsupported_image_type", "undecodable_image")


def test_truncated_and_empty_images_are_422(client: TestClient, service_env: ServiceEnv) -> None:
    truncated = post_raw(client, listing_jpeg(1)[:600], service_env.moderator)
    assert truncated.status_code == 422
    assert error_code(truncated) == "undecodable_image"
    empty = post_raw(client, b"", service_env.moderator)
    assert empty.status_code == 422
    assert error_code(empty) == "empty_image"


def test_pixel_bomb_is_422_before_decoding(make_client: AppClient, service_env: ServiceEnv) -> None:
    client = make_client(max_image_pixels=1_000_000)
    # 4000 x 4000 of one colour: a few KB on the wire, 48 MB once decoded.
    bomb = encode(Image.new("RGB", (4000, 4000), (200, 10, 10)), "PNG", optimize=True)
    assert len(bomb) < 200_000
    response = post_raw(client, bomb, service_env.moderator, "image/png")
    assert response.status_code == 422
    assert error_code(response) == "too_many_pixels"


def test_missing_image_field_and_malformed_multipart(
    client: TestClient, service_env: ServiceEnv
) -> None:
    no_file = client.post("/v1/check", data={"listing_id": "x"}, headers=service_env.moderator)
    assert no_file.status_code in (415, 422)  # an empty form is not multipart for httpx
    text_field = client.post(
        "/v1/check",
        files={"other": ("a.jpg", listing_jpeg(0), "image/jpeg")},
        data={"image": "not a file"},
        headers=service_env.moderator,
    )
    assert text_field.status_code == 422
    assert error_code(text_field) == "missing_image"
    broken = client.post(
        "/v1/check",
        content=b'--xyz\r\nContent-Disposition: form-data; name="image"\r\n\r\nabc',
        headers={**service_env.moderator, "Content-Type": "multipart/form-data; boundary=xyz"},
    )
    assert broken.status_code in (400, 422)
    assert error_code(broken) in ("bad_multipart", "missing_image")
    no_boundary = client.post(
        "/v1/check",
        content=b"abc",
        headers={**service_env.moderator, "Content-Type": "multipart/form-data"},
    )
    assert no_boundary.status_code in (400, 422)


def test_overlong_ids_are_422(client: TestClient, service_env: ServiceEnv) -> None:
    response = post_image(client, listing_jpeg(0), service_env.moderator, listing_id="x" * 201)
    assert response.status_code == 422
    query = post_raw(client, listing_jpeg(0), service_env.moderator)
    assert query.status_code == 200
    long_query = client.post(
        "/v1/check?seller_id=" + "y" * 201,
        content=listing_jpeg(0),
        headers={**service_env.moderator, "Content-Type": "image/jpeg"},
    )
    assert long_query.status_code == 422
    assert error_code(long_query) == "invalid_request"


def test_rate_limit_per_key_is_429_with_retry_after(
    make_client: AppClient, service_env: ServiceEnv
) -> None:
    client = make_client(rate_limit_per_s=0.01, rate_limit_burst=2)
    photo = listing_jpeg(0)
    statuses = [post_raw(client, photo, service_env.moderator).status_code for _ in range(2)]
    assert statuses == [200, 200]
    limited = post_raw(client, photo, service_env.moderator)
    assert limited.status_code == 429
    assert error_code(limited) == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    # Buckets are per key: the admin key still has its own.
    assert post_raw(client, photo, service_env.admin).status_code == 200


def test_batch_costs_one_token_per_image(make_client: AppClient, service_env: ServiceEnv) -> None:
    client = make_client(rate_limit_per_s=0.01, rate_limit_burst=3)
    files = [("images", (f"{n}.jpg", listing_jpeg(n), "image/jpeg")) for n in range(3)]
    first = client.post("/v1/check/batch", files=files, headers=service_env.moderator)
    assert first.status_code == 200
    assert post_raw(client, listing_jpeg(0), service_env.moderator).status_code == 429


def test_slow_check_is_504(make_client: AppClient, service_env: ServiceEnv) -> None:
    client = make_client(request_timeout_s=0.0005)
    big = encode(synthetic_image(3, (2000, 2000)), "PNG")  # decoding alone takes longer
    response = post_raw(client, big, service_env.moderator, "image/png")
    assert response.status_code == 504
    assert error_code(response) == "timeout"
    # The service is fine afterwards: the abandoned work does not poison later batches.
    time.sleep(0.2)
    relaxed = make_client()
    assert post_raw(relaxed, listing_jpeg(0), service_env.moderator).status_code == 200


def test_unknown_routes_and_methods_use_the_error_shape(client: TestClient) -> None:
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404 and error_code(missing) == "not_found"
    wrong_method = client.get("/v1/check")
    assert wrong_method.status_code == 405 and error_code(wrong_method) == "method_not_allowed"


def test_invalid_query_parameters_are_422(client: TestClient, service_env: ServiceEnv) -> None:
    for query in ("limit=0", "limit=501", "offset=-1", "kind=poster", "limit=abc"):
        response = client.get(f"/v1/catalogue/items?{query}", headers=service_env.moderator)
        assert response.status_code == 422, query
        assert error_code(response) == "invalid_request"


def test_garbage_never_gives_a_500(client: TestClient, service_env: ServiceEnv) -> None:
    payloads: list[tuple[str, bytes]] = [
        ("image/jpeg", b"\xff\xd8\xff" + b"\x00" * 5000),
        ("image/png", b"\x89PNG\r\n\x1a\n" + b"\xff" * 300),
        ("image/gif", b"GIF89a\xff\xff\xff\xff" + b"\x00" * 100),
        ("image/tiff", b"II*\x00" + b"\xff" * 64),
        ("image/webp", b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 40),
        ("image/bmp", b"BM" + b"\xff" * 60),
        ("multipart/form-data; boundary=", b"--\r\n\r\n"),
        ("multipart/form-data; boundary=a", b"--a\r\nContent-Disposition: form-data\r\n\r\n--a--"),
    ]
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, "JPEG")
    payloads.append(("image/jpeg", buffer.getvalue()[:-40]))  # cut before the end marker
    for content_type, data in payloads:
        response = post_raw(client, data, service_env.moderator, content_type)
        assert 400 <= response.status_code < 500 or response.status_code == 200, content_type
        if response.status_code != 200:
            error_code(response)
