"""Service fixtures: a tiny catalogue index made in code, API keys, and app clients.

The catalogue index is built once per session (the real default model, untrained) and copied
for each test, so tests that change the catalogue never see each other's changes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from service_support import CATALOGUE, AppClient, ServiceEnv

from lookalike.data import load_catalog
from lookalike.data.synthetic import synthetic_image
from lookalike.indexing import add_entries, new_index_for
from lookalike.model import Embedder
from lookalike.service import create_app
from lookalike.service.keys import KeyStore, Role


@pytest.fixture(scope="session")
def template_index(tmp_path_factory: pytest.TempPathFactory, shared_embedder: Embedder) -> Path:
    root = tmp_path_factory.mktemp("service-catalogue")
    for item_id, (seed, brand) in CATALOGUE.items():
        folder = root / "photos" / brand
        folder.mkdir(parents=True, exist_ok=True)
        synthetic_image(seed).save(folder / f"{item_id}.png")
    index = new_index_for(shared_embedder)
    report = add_entries(index, shared_embedder, load_catalog(root / "photos"), progress=False)
    assert len(report.added) == len(CATALOGUE)
    index.save(root / "index")
    return root


@pytest.fixture
def service_env(tmp_path: Path, template_index: Path, shared_embedder: Embedder) -> ServiceEnv:
    index_dir = tmp_path / "index"
    shutil.copytree(template_index / "index", index_dir)
    keys = KeyStore(tmp_path / "keys.json")
    _, admin = keys.create("brand team", Role.ADMIN)
    _, moderator = keys.create("moderation tool", Role.MODERATOR)
    return ServiceEnv(
        index_dir=index_dir,
        keys_file=tmp_path / "keys.json",
        catalogue_dir=tmp_path / "catalogue-images",
        source_dir=template_index / "photos",
        admin_key=admin,
        moderator_key=moderator,
        embedder=shared_embedder,
    )


@pytest.fixture
def make_client(service_env: ServiceEnv) -> Iterator[AppClient]:
    """``make_client(**settings overrides)``: a started app (lifespan run) and its client."""
    with ExitStack() as stack:

        def factory(**overrides: Any) -> TestClient:
            app = create_app(service_env.settings(**overrides), embedder=service_env.embedder)
            return stack.enter_context(TestClient(app))

        yield factory


@pytest.fixture
def client(make_client: AppClient) -> TestClient:
    return make_client()
