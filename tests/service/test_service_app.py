"""App wiring: health, readiness, metrics, OpenAPI, logs, settings, start-up options."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from service_support import AppClient, ServiceEnv, listing_jpeg, post_image, post_raw

from lookalike.detect import load_detector
from lookalike.service import Settings, create_app
from lookalike.service.batcher import BatcherClosedError, MicroBatcher
from lookalike.service.observability import JsonFormatter


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["model"] == "default"
    assert ready["index_items"] == 5 and ready["snapshot"].startswith("snapshot-")


def test_not_ready_outside_the_lifespan(service_env: ServiceEnv) -> None:
    app = create_app(service_env.settings(), embedder=service_env.embedder)
    client = TestClient(app)  # not entered: the lifespan has not run, nothing is loaded
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["error"]["code"] == "not_ready"
    assert client.get("/healthz").status_code == 200
    check = post_raw(client, listing_jpeg(0), service_env.moderator)
    assert check.status_code == 503


def test_metrics_count_requests_latency_batches_and_verdicts(
    client: TestClient, service_env: ServiceEnv
) -> None:
    post_image(client, listing_jpeg(0), service_env.moderator)
    post_raw(client, b"junk", service_env.moderator)
    client.get("/v1/catalogue/items/nope", headers=service_env.moderator)
    text = client.get("/metrics").text
    assert 'lookalike_http_requests_total{method="POST",route="/v1/check",status="200"} 1.0' in text
    assert 'route="/v1/check",status="415"' in text
    # Route templates, not raw paths: ids never become label values.
    assert 'route="/v1/catalogue/items/{item_id}",status="404"' in text
    assert 'lookalike_http_request_duration_seconds_bucket{le="0.25",method="POST"' in text
    assert "lookalike_inference_batch_size_count 1.0" in text
    assert 'lookalike_verdicts_total{label="copy"} 1.0' in text
    assert "lookalike_catalogue_items 5.0" in text
    assert "lookalike_inference_queue_depth 0.0" in text


def test_every_response_has_a_request_id_and_a_json_log_line(
    client: TestClient, service_env: ServiceEnv, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="lookalike.service"):
        response = post_image(client, listing_jpeg(1), service_env.moderator)
    request_id = response.headers["X-Request-ID"]
    records = [r for r in caplog.records if getattr(r, "request_id", None) == request_id]
    assert len(records) == 1
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["message"] == "request" and line["route"] == "/v1/check"
    assert line["status"] == 200 and line["duration_ms"] > 0
    assert line["key_id"] == service_env.moderator_key.split("_")[1]
    assert service_env.moderator_key not in json.dumps(line)  # keys never reach the logs


def test_openapi_documents_every_endpoint_with_schemas_and_examples(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    expected = {
        ("/v1/check", "post"),
        ("/v1/check/batch", "post"),
        ("/v1/verdicts/{verdict_id}/evidence.png", "get"),
        ("/v1/catalogue/items", "post"),
        ("/v1/catalogue/items", "get"),
        ("/v1/catalogue/items/{item_id}", "get"),
        ("/v1/catalogue/items/{item_id}", "delete"),
        ("/v1/catalogue/items/{item_id}/image", "get"),
        ("/v1/catalogue/stats", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/review", "get"),
    }
    assert expected <= {(path, method) for path, item in paths.items() for method in item}
    check = paths["/v1/check"]["post"]
    assert {"multipart/form-data", "image/jpeg"} <= set(check["requestBody"]["content"])
    for status in ("200", "401", "403", "413", "415", "422", "429", "504"):
        assert status in check["responses"], status
    schemas = spec["components"]["schemas"]
    assert schemas["CheckResponse"]["examples"][0]["label"] == "copy"
    assert "region" in schemas["MatchOut"]["properties"]
    assert set(schemas["ErrorResponse"]["properties"]) == {"error"}
    schemes = spec["components"]["securitySchemes"]
    assert schemes["APIKeyHeader"]["name"] == "X-API-Key" and "HTTPBearer" in schemes
    for path, item in paths.items():
        for method, operation in item.items():
            assert operation.get("summary"), (method, path)


def test_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LOOKALIKE_INDEX_DIR", str(tmp_path / "idx"))
    monkeypatch.setenv("LOOKALIKE_KEYS_FILE", str(tmp_path / "keys.json"))
    monkeypatch.setenv("LOOKALIKE_MAX_BATCH", "8")
    monkeypatch.setenv("LOOKALIKE_MICRO_BATCHING", "false")
    settings = Settings()  # type: ignore[call-arg]
    assert settings.index_dir == tmp_path / "idx" and settings.max_batch == 8
    assert settings.effective_max_batch == 1
    assert settings.resolved_catalogue_dir == tmp_path / "idx" / "catalogue-images"
    with pytest.raises(ValueError, match="together"):
        Settings(index_dir=tmp_path, keys_file=tmp_path, copy_threshold=0.9)
    with pytest.raises(ValueError):
        Settings(index_dir=tmp_path, keys_file=tmp_path, max_batch=0)


def test_create_index_starts_an_empty_catalogue(
    make_client: AppClient, service_env: ServiceEnv, tmp_path: Path
) -> None:
    client = make_client(index_dir=tmp_path / "fresh", create_index=True)
    verdict = post_raw(client, listing_jpeg(0), service_env.moderator).json()
    assert verdict["label"] == "clear" and verdict["score"] == 0.0 and verdict["matches"] == []
    from service_support import encode

    from lookalike.data.synthetic import synthetic_image

    files = {"image": ("a.png", encode(synthetic_image(0), "PNG"), "image/png")}
    added = client.post("/v1/catalogue/items", files=files, headers=service_env.admin)
    assert added.status_code == 201
    again = post_raw(client, listing_jpeg(0), service_env.moderator).json()
    assert again["matches"][0]["item_id"] == added.json()["item_id"]


def test_missing_index_without_create_index_fails_start_up(
    make_client: AppClient, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError, match="no lookalike index"):
        make_client(index_dir=tmp_path / "nothing")


def test_batcher_gathers_skips_cancelled_and_refuses_after_close(service_env: ServiceEnv) -> None:
    detector = load_detector(service_env.index_dir, model=service_env.embedder)
    pixels = [detector.prepare(listing_jpeg(n)) for n in range(5)]
    sizes: list[int] = []

    async def scenario() -> None:
        batcher = MicroBatcher(
            detector,
            max_batch=4,
            max_wait_s=0.5,
            threads=torch.get_num_threads(),
            on_batch=lambda size, _: sizes.append(size),
        )
        await batcher.start()
        abandoned = asyncio.create_task(batcher.submit(pixels[0]))
        await asyncio.sleep(0)
        abandoned.cancel()  # a caller that timed out: its image must not be computed
        results = await asyncio.gather(*(batcher.submit(p) for p in pixels))
        await batcher.close()
        assert [r.verdict.best.item_id for r in results if r.verdict.best] == [
            f"item{n:03d}" for n in range(5)
        ]
        assert max(r.batch_size for r in results) == 4  # capped at max_batch
        with pytest.raises(BatcherClosedError):
            await batcher.submit(pixels[0])

    asyncio.run(scenario())
    assert sum(sizes) == 5 and max(sizes) <= 4


def test_serve_flags_become_settings(tmp_path: Path) -> None:
    import argparse

    from lookalike.service.cli import add_service_commands, settings_from_args

    parser = argparse.ArgumentParser()
    add_service_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        [
            "serve",
            "--index",
            str(tmp_path / "idx"),
            "--keys-file",
            str(tmp_path / "keys.json"),
            "--no-micro-batching",
            "--max-batch",
            "8",
            "--rate-limit",
            "0",
            "--port",
            "9000",
            "--verify",
        ]
    )
    settings = settings_from_args(args)
    assert settings.micro_batching is False and settings.max_batch == 8
    assert settings.verify is True and Settings.model_fields["verify"].default is False
    assert settings.rate_limit_per_s == 0 and settings.index_dir == tmp_path / "idx"
    assert settings.max_wait_ms == Settings.model_fields["max_wait_ms"].default  # not given
    assert (args.host, args.port) == ("127.0.0.1", 9000)
