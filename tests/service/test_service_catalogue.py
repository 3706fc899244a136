"""Catalogue admin through the API: add, get, list, image, delete, stats; changes reach the
next check, survive a restart, and never disturb checks running meanwhile."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fastapi.testclient import TestClient
from service_support import AppClient, Response, ServiceEnv, encode, listing_jpeg, post_image

from lookalike.data.synthetic import synthetic_image


def add_item(
    client: TestClient, env: ServiceEnv, data: bytes, filename: str = "new.png", **form: str
) -> Response:
    files = {"image": (filename, data, "image/png")}
    return client.post("/v1/catalogue/items", files=files, data=form, headers=env.admin)


def test_add_get_list_image_delete(client: TestClient, service_env: ServiceEnv) -> None:
    data = encode(synthetic_image(50), "PNG")
    response = add_item(client, service_env, data, brand="acme", kind="logo", sku="SKU-50")
    assert response.status_code == 201, response.text
    item = response.json()
    sha = hashlib.sha256(data).hexdigest()
    assert item["item_id"] == sha[:16] and item["sha256"] == sha
    assert (item["brand"], item["kind"], item["sku"]) == ("acme", "logo", "SKU-50")
    assert item["added_at"].endswith("+00:00")

    fetched = client.get(f"/v1/catalogue/items/{item['item_id']}", headers=service_env.moderator)
    assert fetched.status_code == 200 and fetched.json() == item
    image = client.get(item["image_url"], headers=service_env.moderator)
    assert image.status_code == 200 and image.content == data
    assert image.headers["content-type"] == "image/png"
    # Stored by content under the configured folder.
    stored = service_env.catalogue_dir / sha[:2] / f"{sha}.png"
    assert stored.read_bytes() == data

    deleted = client.delete(f"/v1/catalogue/items/{item['item_id']}", headers=service_env.admin)
    assert deleted.status_code == 200
    assert deleted.json()["removed"]["item_id"] == item["item_id"]
    assert deleted.json()["snapshot"].startswith("snapshot-")
    gone = client.get(f"/v1/catalogue/items/{item['item_id']}", headers=service_env.moderator)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "item_not_found"
    assert not stored.exists()  # the service's own copy goes with the item
    again = client.delete(f"/v1/catalogue/items/{item['item_id']}", headers=service_env.admin)
    assert again.status_code == 404


def test_list_pages_and_filters(client: TestClient, service_env: ServiceEnv) -> None:
    add_item(client, service_env, encode(synthetic_image(60), "PNG"), brand="zeta", kind="logo")
    headers = service_env.moderator
    first = client.get("/v1/catalogue/items?limit=2", headers=headers).json()
    assert [i["item_id"] for i in first["items"]] == ["item000", "item001"]
    assert first["next_offset"] == 2
    rest = client.get("/v1/catalogue/items?limit=10&offset=2", headers=headers).json()
    assert len(rest["items"]) == 4 and rest["next_offset"] is None
    zeta = client.get("/v1/catalogue/items?brand=zeta", headers=headers).json()["items"]
    assert len(zeta) == 3 and {i["brand"] for i in zeta} == {"zeta"}
    logos = client.get("/v1/catalogue/items?brand=zeta&kind=logo", headers=headers).json()
    assert len(logos["items"]) == 1 and logos["items"][0]["kind"] == "logo"
    none = client.get("/v1/catalogue/items?brand=nobody", headers=headers).json()
    assert none["items"] == [] and none["next_offset"] is None


def test_stats_follow_changes(client: TestClient, service_env: ServiceEnv) -> None:
    before = client.get("/v1/catalogue/stats", headers=service_env.moderator).json()
    assert before["items"] == 5 and before["brands"] == 2 and before["by_kind"] == {"product": 5}
    add_item(client, service_env, encode(synthetic_image(61), "PNG"), brand="new", kind="logo")
    after = client.get("/v1/catalogue/stats", headers=service_env.moderator).json()
    assert after["items"] == 6 and after["brands"] == 3 and after["by_kind"]["logo"] == 1
    assert after["snapshot"] != before["snapshot"]
    assert after["model"]["name"] == "default" and after["factory"] == "Flat"


def test_duplicates_and_invalid_fields(client: TestClient, service_env: ServiceEnv) -> None:
    catalogue_copy = (service_env.source_dir / "acme" / "item001.png").read_bytes()
    same_file = add_item(client, service_env, catalogue_copy)
    assert same_file.status_code == 409
    assert same_file.json()["error"]["code"] == "duplicate_image"
    assert "item001" in same_file.json()["error"]["message"]
    taken_id = add_item(client, service_env, encode(synthetic_image(70), "PNG"), item_id="item002")
    assert taken_id.status_code == 409
    assert taken_id.json()["error"]["code"] == "duplicate_item_id"
    data = encode(synthetic_image(71), "PNG")
    assert add_item(client, service_env, data, kind="poster").status_code == 422
    assert add_item(client, service_env, data, item_id="../etc/passwd").status_code == 422
    assert add_item(client, service_env, data, brand="b" * 201).status_code == 422
    missing = client.post("/v1/catalogue/items", data={"brand": "x"}, headers=service_env.admin)
    assert missing.status_code == 422
    bad_image = add_item(client, service_env, b"\x89PNG\r\n\x1a\n broken")
    assert bad_image.status_code in (415, 422)
    not_image = client.post(
        "/v1/catalogue/items",
        files={"image": ("a.txt", b"text", "text/plain")},
        headers=service_env.admin,
    )
    assert not_image.status_code == 415
    assert client.get("/v1/catalogue/stats", headers=service_env.admin).json()["items"] == 5
    assert not service_env.catalogue_dir.exists() or not any(service_env.catalogue_dir.rglob("*.*"))


def test_an_added_item_is_matched_by_the_next_check_and_a_removed_one_is_not(
    client: TestClient, service_env: ServiceEnv
) -> None:
    seed = 80
    before = post_image(client, listing_jpeg(seed), service_env.moderator).json()
    assert before["matches"][0]["item_id"].startswith("item")
    added = add_item(
        client, service_env, encode(synthetic_image(seed), "PNG"), item_id="new-80", brand="acme"
    )
    assert added.status_code == 201
    after = post_image(client, listing_jpeg(seed), service_env.moderator).json()
    assert after["matches"][0]["item_id"] == "new-80" and after["label"] == "copy"
    assert after["index"]["snapshot"] != before["index"]["snapshot"]
    evidence = client.get(after["evidence_url"], headers=service_env.moderator)
    assert evidence.status_code == 200  # the stored catalogue copy is there to show

    client.delete("/v1/catalogue/items/new-80", headers=service_env.admin)
    removed = post_image(client, listing_jpeg(seed), service_env.moderator).json()
    assert all(m["item_id"] != "new-80" for m in removed["matches"])


def test_changes_survive_a_restart(make_client: AppClient, service_env: ServiceEnv) -> None:
    first = make_client()
    add_item(first, service_env, encode(synthetic_image(90), "PNG"), item_id="kept", brand="acme")
    first.delete("/v1/catalogue/items/item003", headers=service_env.admin)

    restarted = make_client()  # a new app on the same index folder
    headers = service_env.moderator
    assert restarted.get("/v1/catalogue/items/kept", headers=headers).status_code == 200
    assert restarted.get("/v1/catalogue/items/item003", headers=headers).status_code == 404
    assert restarted.get("/v1/catalogue/items/kept/image", headers=headers).status_code == 200
    verdict = post_image(restarted, listing_jpeg(90), headers).json()
    assert verdict["matches"][0]["item_id"] == "kept"


def test_removing_a_cli_indexed_item_keeps_its_original_file(
    client: TestClient, service_env: ServiceEnv
) -> None:
    original = service_env.source_dir / "acme" / "item000.png"
    assert (
        client.delete("/v1/catalogue/items/item000", headers=service_env.admin).status_code == 200
    )
    assert original.is_file()  # the brand's own catalogue folder is not the service's to delete


def test_checks_keep_working_during_catalogue_changes(
    client: TestClient, service_env: ServiceEnv
) -> None:
    stop = threading.Event()
    failures: list[str] = []
    checked = [0]

    def keep_checking(seed: int) -> None:
        photo = listing_jpeg(seed)
        for _ in range(200):  # bounded; normally stopped by the event first
            if stop.is_set():
                return
            response = post_image(client, photo, service_env.moderator)
            if response.status_code != 200:
                failures.append(response.text)
            elif response.json()["matches"][0]["item_id"] != f"item{seed:03d}":
                failures.append(f"seed {seed}: {response.json()['matches'][0]['item_id']}")
            checked[0] += 1

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(keep_checking, seed) for seed in (0, 1, 2)]
        for number in range(4):
            data = encode(synthetic_image(200 + number), "PNG")
            response = add_item(client, service_env, data, item_id=f"live-{number}")
            assert response.status_code == 201, response.text
        assert (
            client.delete("/v1/catalogue/items/live-0", headers=service_env.admin).status_code
            == 200
        )
        stop.set()
        for future in futures:
            future.result()
    assert not failures
    assert checked[0] >= 3
    stats = client.get("/v1/catalogue/stats", headers=service_env.admin).json()
    assert stats["items"] == 5 + 3


def test_concurrent_adds_of_one_image_store_it_once(
    client: TestClient, service_env: ServiceEnv
) -> None:
    data = encode(synthetic_image(300), "PNG")
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: add_item(client, service_env, data), range(4)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 409, 409, 409]
    files = [p for p in Path(service_env.catalogue_dir).rglob("*") if p.is_file()]
    assert len(files) == 1
