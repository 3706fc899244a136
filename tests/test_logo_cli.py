"""The ``lookalike`` command with logos: index build/add/remove/stats, check --evidence and
--no-logos, driven in-process through ``lookalike.cli.main``."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from logo_helpers import (
    SVG_LOGO,
    TINY_MODEL,
    background,
    draw_logos,
    one_torch_thread,
    paste_logo,
    tiny_embedder,
    write_logo_files,
)
from lookalike.cli import main
from lookalike.data.synthetic import synthetic_image
from lookalike.index import CatalogIndex
from lookalike.logos.catalog import LogoCatalog, has_logo_index, logo_index_dir

Cli = Callable[..., tuple[int, Any]]
QUIET = ("--quiet", "--workers", "1")
PRODUCTS = 4
PNG_LOGOS = ("badge", "shapes", "wordmark")


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    with one_torch_thread():
        tiny_embedder()  # registers the tiny photo model the index will record
        yield


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """products/item0-3.png, logos/{badge,shapes,wordmark}.png and mark.svg at the top."""
    root = tmp_path_factory.mktemp("catalogue")
    (root / "products").mkdir()
    for seed in range(PRODUCTS):
        synthetic_image(seed, (96, 96)).save(root / "products" / f"item{seed}.png")
    write_logo_files(root / "logos")
    (root / "mark.svg").write_text(SVG_LOGO)
    return root


@pytest.fixture(scope="module")
def built(
    catalogue: Path, logo_model_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    """The catalogue built once by the command (read-only: copy it before changing it)."""
    index = tmp_path_factory.mktemp("built") / "index"
    argv = ["index", "build", catalogue, "--index", index, "--model", TINY_MODEL]
    argv += ["--logo-model", logo_model_path, *QUIET]
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main([str(arg) for arg in argv])
    assert code == 0, buffer.getvalue()
    return index, json.loads(buffer.getvalue())


@pytest.fixture
def index_copy(built: tuple[Path, dict[str, Any]], tmp_path: Path) -> Path:
    return Path(shutil.copytree(built[0], tmp_path / "index"))


@pytest.fixture(scope="module")
def listing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("listings")
    photo, _ = paste_logo(draw_logos()["badge"], (400, 400))
    photo.save(folder / "badge_listing.png")
    background((300, 200), "noise").save(folder / "plain_listing.jpg")
    return folder


def stats(cli: Cli, index: Path) -> dict[str, Any]:
    code, data = cli("index", "stats", "--index", index)
    assert code == 0
    return dict(data)


# -- index build / stats ---------------------------------------------------------------------------


def test_build_indexes_logos_into_the_logo_catalogue(
    built: tuple[Path, dict[str, Any]], logo_model_path: Path, cli: Cli
) -> None:
    index, summary = built
    # PNG logos are photos too; the SVG is only ever a logo
    assert summary["added"] == PRODUCTS + len(PNG_LOGOS)
    assert summary["logos"] == {"added": 4, "duplicates_skipped": 0, "errors": []}
    assert has_logo_index(index)
    data = stats(cli, index)
    assert data["items"] == PRODUCTS + len(PNG_LOGOS)
    assert data["by_kind"] == {"logo": len(PNG_LOGOS), "product": PRODUCTS}
    logo_search = data["logo_search"]
    assert logo_search["items"] == 4 and logo_search["by_kind"] == {"logo": 4}
    assert logo_search["model"]["name"] == "lookalike-logo"
    catalog = LogoCatalog.load(logo_index_dir(index))
    assert catalog.model_ref == str(logo_model_path)
    assert {r.item_id for r in catalog.index.records()} == {*PNG_LOGOS, "mark"}
    assert all(catalog.index.attachment(item) for item in (*PNG_LOGOS, "mark"))
    assert CatalogIndex.load(index).get("mark") is None  # never decoded as a photo


def test_build_with_no_logos_skips_logo_search(
    catalogue: Path, logo_model_path: Path, cli: Cli, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    code, summary = cli(
        "index", "build", catalogue, "--index", index, "--model", TINY_MODEL, "--no-logos", *QUIET
    )
    assert code == 0
    assert summary["logos"] is None
    assert summary["added"] == PRODUCTS + len(PNG_LOGOS)  # the SVG is not a photo
    assert not has_logo_index(index)
    assert "logo_search" not in stats(cli, index)


def test_rebuild_without_logos_leaves_no_stale_logo_catalogue(
    catalogue: Path, index_copy: Path, cli: Cli
) -> None:
    """``index build`` writes a new index: a logo catalogue left from an earlier build of
    the same folder must not survive a build without logos (today INDEX/logos is kept, and
    ``check`` goes on reporting logos that are no longer in the catalogue)."""
    code, _ = cli(
        "index",
        "build",
        catalogue / "products",
        "--index",
        index_copy,
        "--model",
        TINY_MODEL,
        "--no-logos",
        *QUIET,
    )
    assert code == 0
    assert stats(cli, index_copy)["items"] == PRODUCTS
    assert not has_logo_index(index_copy)


def test_build_of_logos_only(logo_model_path: Path, cli: Cli, tmp_path: Path) -> None:
    """A catalogue of SVG logos alone: nothing for the photo index, still a usable index."""
    folder = tmp_path / "svgs"
    folder.mkdir()
    (folder / "mark.svg").write_text(SVG_LOGO)
    index = tmp_path / "index"
    code, summary = cli(
        "index", "build", folder, "--index", index, "--model", TINY_MODEL,
        "--logo-model", logo_model_path, *QUIET,
    )  # fmt: skip
    assert code == 0, summary
    assert summary["added"] == 0 and summary["logos"]["added"] == 1
    data = stats(cli, index)
    assert data["items"] == 0 and data["logo_search"]["items"] == 1


# -- index add / remove ----------------------------------------------------------------------------


def test_add_puts_new_logos_into_the_existing_catalogue(
    index_copy: Path, cli: Cli, tmp_path: Path
) -> None:
    extra = tmp_path / "more"
    logo = Image.new("RGBA", (120, 60), (0, 0, 0, 0))
    logo.paste(draw_logos()["shapes"].resize((120, 60)).rotate(180), (0, 0))
    (extra / "logos").mkdir(parents=True)
    logo.save(extra / "logos" / "upside.png")
    code, summary = cli("index", "add", extra, "--index", index_copy, *QUIET)
    assert code == 0, summary
    assert summary["added"] == 1 and summary["logos"]["added"] == 1
    data = stats(cli, index_copy)
    assert data["logo_search"]["items"] == 5
    assert data["items"] == PRODUCTS + len(PNG_LOGOS) + 1


def test_remove_takes_a_logo_out_of_both_indexes(index_copy: Path, cli: Cli) -> None:
    code, result = cli("index", "remove", "wordmark", "mark", "--index", index_copy)
    assert code == 0
    assert sorted(result["removed"]) == ["mark", "wordmark"] and result["not_found"] == []
    data = stats(cli, index_copy)
    assert data["items"] == PRODUCTS + len(PNG_LOGOS) - 1
    assert data["logo_search"]["items"] == 2
    photos = CatalogIndex.load(index_copy)
    logos = CatalogIndex.load(logo_index_dir(index_copy))
    assert photos.get("wordmark") is None and logos.get("wordmark") is None
    assert logos.get("mark") is None and logos.attachment("mark") is None
    assert logos.attachment("badge") is not None
    code, result = cli("index", "remove", "nothing-like-it", "--index", index_copy)
    assert code == 1 and result == {"removed": [], "not_found": ["nothing-like-it"]}


def test_remove_of_a_product_leaves_the_logos_alone(index_copy: Path, cli: Cli) -> None:
    code, result = cli("index", "remove", "item1", "--index", index_copy)
    assert code == 0 and result["removed"] == ["item1"]
    assert stats(cli, index_copy)["logo_search"]["items"] == 4


# -- check -----------------------------------------------------------------------------------------


def test_check_reports_logos(built: tuple[Path, dict[str, Any]], listing: Path, cli: Cli) -> None:
    index, _ = built
    images = [listing / "badge_listing.png", listing / "plain_listing.jpg"]
    code, results = cli("check", *images, "--index", index, *QUIET)
    assert code == 0
    assert [r["image"] for r in results] == [str(p) for p in images]
    for result in results:
        assert result["label"] in {"copy", "logo", "review", "clear"}
        assert result["basis"] in {"photo", "logo"}
        assert isinstance(result["logos"], list)
        for logo in result["logos"]:
            assert logo["kind"] == "logo" and logo["item_id"] in {*PNG_LOGOS, "mark"}
            assert len(logo["region"]) == 4 and all(len(point) == 2 for point in logo["region"])
            assert isinstance(logo["inliers"], int)
            assert "point_pairs" not in logo


def test_check_with_no_logos(built: tuple[Path, dict[str, Any]], listing: Path, cli: Cli) -> None:
    index, _ = built
    code, results = cli(
        "check", listing / "badge_listing.png", "--index", index, "--no-logos", *QUIET
    )
    assert code == 0
    assert results[0]["logos"] == [] and results[0]["basis"] == "photo"


def test_check_writes_evidence_pictures(
    built: tuple[Path, dict[str, Any]], listing: Path, cli: Cli, tmp_path: Path
) -> None:
    index, _ = built
    images = [listing / "badge_listing.png", listing / "plain_listing.jpg"]
    evidence = tmp_path / "evidence"
    code, results = cli("check", *images, "--index", index, "--evidence", evidence, *QUIET)
    assert code == 0
    pictures = sorted(evidence.glob("*.png"))
    assert len(pictures) == len(images)
    for result in results:
        assert "logos" in result
        path = Path(result["evidence"])
        assert path in pictures
        with Image.open(path) as picture:
            assert picture.format == "PNG" and picture.width > 100


def test_check_evidence_and_bad_input(
    built: tuple[Path, dict[str, Any]], cli: Cli, tmp_path: Path
) -> None:
    """An unreadable image is an error row, with no evidence picture and no crash."""
    index, _ = built
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    code, results = cli("check", broken, "--index", index, "--evidence", tmp_path / "ev", *QUIET)
    assert code == 1
    assert results[0]["label"] == "error" and "evidence" not in results[0]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (("--widths", "16,32"), "four integers"),
        (("--widths", "16,32,x,128"), "four integers"),
        (("--budget-minutes", "0"), "budget_minutes"),
        (("--init-from", "missing.pt"), "missing.pt"),
        (("--init-from", "missing.pt", "--widths", "8,8,8,8"), "network settings"),
        (("--device", "gpu-please"), "device"),
    ],
)
def test_train_logos_rejects_bad_settings_before_reading_data(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: tuple[str, str],
    message: str,
) -> None:
    # tmp_path holds no logos: the settings must fail first, with their own message
    argv = ["train-logos", str(tmp_path), "--out", str(tmp_path / "run"), "--quiet", *option]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
