"""API keys and roles: 401 without a valid key, 403 for the wrong role, open health endpoints;
the keys file and the `keys` commands."""

from __future__ import annotations

import argparse
import json
import stat

import pytest
from fastapi.testclient import TestClient
from service_support import AppClient, ServiceEnv, listing_jpeg, post_image, post_raw

from lookalike.service.cli import add_service_commands
from lookalike.service.keys import KeysFileError, KeyStore, Role

# Every protected endpoint with the role it needs.
PROTECTED = [
    ("POST", "/v1/check", "moderator"),
    ("POST", "/v1/check/batch", "moderator"),
    ("GET", "/v1/verdicts/abc/evidence.png", "moderator"),
    ("GET", "/v1/catalogue/items", "moderator"),
    ("GET", "/v1/catalogue/items/item000", "moderator"),
    ("GET", "/v1/catalogue/items/item000/image", "moderator"),
    ("GET", "/v1/catalogue/stats", "moderator"),
    ("POST", "/v1/catalogue/items", "admin"),
    ("DELETE", "/v1/catalogue/items/item000", "admin"),
]


@pytest.mark.parametrize(("method", "path", "role"), PROTECTED)
def test_protected_endpoints_need_a_valid_key(
    client: TestClient, method: str, path: str, role: str
) -> None:
    missing = client.request(method, path)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "missing_api_key"
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    for wrong in ("lk_000000000000_nope", "not-a-key", "lk_", "x" * 500):
        response = client.request(method, path, headers={"X-API-Key": wrong})
        assert response.status_code == 401, wrong
        assert response.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p, r in PROTECTED if r == "admin"])
def test_moderators_may_not_change_the_catalogue(
    client: TestClient, service_env: ServiceEnv, method: str, path: str
) -> None:
    response = client.request(method, path, headers=service_env.moderator)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert "admin" in response.json()["error"]["message"]
    # ...and nothing changed.
    assert client.get("/v1/catalogue/stats", headers=service_env.admin).json()["items"] == 5


def test_admins_may_also_check(client: TestClient, service_env: ServiceEnv) -> None:
    assert post_image(client, listing_jpeg(0), service_env.admin).status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/review", "/openapi.json"])
def test_health_docs_and_review_page_are_open(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200


def test_a_revoked_key_stops_working_without_a_restart(
    client: TestClient, service_env: ServiceEnv
) -> None:
    assert post_raw(client, listing_jpeg(0), service_env.moderator).status_code == 200
    store = KeyStore(service_env.keys_file)
    key_id = service_env.moderator_key.split("_")[1]
    assert store.revoke(key_id) is not None
    response = post_raw(client, listing_jpeg(0), service_env.moderator)
    assert response.status_code == 401
    # A key created while the server runs works at once (keys_reload_s=0 here; 1 s default).
    _, fresh = store.create("new tool", Role.MODERATOR)
    assert post_raw(client, listing_jpeg(0), {"X-API-Key": fresh}).status_code == 200


def test_keys_are_stored_hashed(service_env: ServiceEnv) -> None:
    text = service_env.keys_file.read_text()
    for key in (service_env.admin_key, service_env.moderator_key):
        secret = key.split("_", 2)[2]
        assert secret not in text
    entries = json.loads(text)["keys"]
    assert {entry["role"] for entry in entries} == {"admin", "moderator"}
    assert all(len(entry["digest"]) == 64 and entry["salt"] for entry in entries)
    assert stat.S_IMODE(service_env.keys_file.stat().st_mode) == 0o600
    store = KeyStore(service_env.keys_file)
    admin = store.authenticate(service_env.admin_key)
    assert admin is not None and admin.role is Role.ADMIN
    tampered = service_env.admin_key[:-1] + ("A" if service_env.admin_key[-1] != "A" else "B")
    assert store.authenticate(tampered) is None


def test_roles() -> None:
    assert Role.ADMIN.allows(Role.MODERATOR) and Role.ADMIN.allows(Role.ADMIN)
    assert Role.MODERATOR.allows(Role.MODERATOR) and not Role.MODERATOR.allows(Role.ADMIN)


def test_app_refuses_to_start_without_a_keys_file(
    make_client: AppClient, service_env: ServiceEnv
) -> None:
    with pytest.raises(KeysFileError, match="keys create"):
        make_client(keys_file=service_env.keys_file.with_name("missing.json"))


def run_keys(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    add_service_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code = int(args.func(args))
    return code, capsys.readouterr().out


def test_keys_commands_create_list_revoke(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    keys_file = f"{tmp_path}/keys.json"
    code, out = run_keys(
        ["keys", "create", "--role", "moderator", "--name", "tool", "--keys-file", keys_file],
        capsys,
    )
    created = json.loads(out)
    assert code == 0 and created["role"] == "moderator" and created["key"].startswith("lk_")
    assert KeyStore(keys_file).authenticate(created["key"]) is not None

    code, out = run_keys(["keys", "list", "--keys-file", keys_file], capsys)
    listed = json.loads(out)
    assert code == 0 and [k["key_id"] for k in listed] == [created["key_id"]]
    assert "key" not in listed[0] and "digest" not in listed[0]  # the secret is shown once

    code, out = run_keys(["keys", "revoke", created["key_id"], "--keys-file", keys_file], capsys)
    assert code == 0 and json.loads(out)["revoked_at"]
    assert KeyStore(keys_file).authenticate(created["key"]) is None
    code, _ = run_keys(["keys", "revoke", "unknown", "--keys-file", keys_file], capsys)
    assert code == 1
