"""Tests for lookalike.data.manifest: manifests, folder scans and catalogue dispatch."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest

from lookalike.data.manifest import (
    CatalogEntry,
    ManifestError,
    iter_image_files,
    load_catalog,
    read_manifest,
    scan_catalog_folder,
)


def touch(root: Path, *relatives: str) -> list[Path]:
    """Create empty files (listing never decodes them) and their folders."""
    paths = []
    for relative in relatives:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        paths.append(path)
    return paths


def write_jsonl(path: Path, *rows: object) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def by_id(entries: list[CatalogEntry]) -> dict[str, CatalogEntry]:
    return {entry.item_id: entry for entry in entries}


# --- CSV and JSONL manifests ---------------------------------------------------------------


def test_csv_manifest_with_defaults_and_relative_paths(tmp_path: Path) -> None:
    manifest = tmp_path / "cat.csv"
    manifest.write_text(
        "image,item_id,brand,kind,sku,notes\n"
        "shoes/a.jpg, A1 ,  Nike ,product,SKU-1,ignored\n"
        " logos/nike.png ,,,logo,,\n"
        "/abs/b.png,,,,,\n"
    )
    entries = read_manifest(manifest)
    assert entries == [
        CatalogEntry(tmp_path / "shoes/a.jpg", "A1", "Nike", "product", "SKU-1"),
        CatalogEntry(tmp_path / "logos/nike.png", "nike", None, "logo", None),
        CatalogEntry(Path("/abs/b.png"), "b", None, "product", None),
    ]


def test_csv_header_is_case_and_space_insensitive_and_bom_tolerated(tmp_path: Path) -> None:
    manifest = tmp_path / "cat.csv"
    manifest.write_text("\ufeff Image , Kind \na.jpg,LOGO\n\n", encoding="utf-8")
    assert read_manifest(manifest) == [CatalogEntry(tmp_path / "a.jpg", "a", kind="logo")]


def test_csv_short_rows_use_defaults(tmp_path: Path) -> None:
    manifest = tmp_path / "cat.csv"
    manifest.write_text("image,brand\na.jpg\n")
    assert read_manifest(manifest) == [CatalogEntry(tmp_path / "a.jpg", "a")]


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson", ".JSONL"])
def test_jsonl_manifest(tmp_path: Path, suffix: str) -> None:
    manifest = tmp_path / f"cat{suffix}"
    manifest.write_text(
        json.dumps({"image": "a.jpg", "brand": "Acme", "sku": 123, "extra": [1]})
        + "\n\n   \n"
        + json.dumps({"image": "b.png", "item_id": 7, "kind": "logo", "brand": ""})
        + "\n"
    )
    assert read_manifest(manifest) == [
        CatalogEntry(tmp_path / "a.jpg", "a", "Acme", "product", "123"),
        CatalogEntry(tmp_path / "b.png", "7", None, "logo", None),
    ]


def test_root_overrides_the_manifest_folder(tmp_path: Path) -> None:
    manifest = write_jsonl(tmp_path / "m.jsonl", {"image": "x/a.jpg"})
    root = tmp_path / "images"
    assert read_manifest(manifest, root=root)[0].image == root / "x/a.jpg"


def manifest_error(path: Path, *words: str) -> ManifestError:
    with pytest.raises(ManifestError) as info:
        read_manifest(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, message
    return info.value


def test_bad_kind_names_the_row(tmp_path: Path) -> None:
    csv_path = tmp_path / "cat.csv"
    csv_path.write_text("image,kind\na.jpg,product\nb.jpg,banner\n")
    error = manifest_error(csv_path, "line 3", "'banner'", "kind")
    assert error.line == 3
    jsonl_path = write_jsonl(tmp_path / "cat.jsonl", {"image": "a.jpg", "kind": "poster"})
    manifest_error(jsonl_path, "line 1", "'poster'")


def test_missing_image_column(tmp_path: Path) -> None:
    csv_path = tmp_path / "cat.csv"
    csv_path.write_text("path,brand\na.jpg,x\n")
    manifest_error(csv_path, "line 1", "'image'")
    jsonl_path = write_jsonl(tmp_path / "cat.jsonl", {"image": "a.jpg"}, {"path": "b.jpg"})
    manifest_error(jsonl_path, "line 2", "'image'")


def test_empty_image_value(tmp_path: Path) -> None:
    csv_path = tmp_path / "cat.csv"
    csv_path.write_text("image,brand\n  ,acme\n")
    manifest_error(csv_path, "line 2", "'image'")


def test_duplicate_item_ids_name_both_rows(tmp_path: Path) -> None:
    csv_path = tmp_path / "cat.csv"
    csv_path.write_text("image,item_id\na.jpg,x\nb.jpg,y\nc.jpg,x\n")
    error = manifest_error(csv_path, "line 4", "line 2", "duplicate item_id 'x'")
    assert error.line == 4
    # Defaulted ids collide too: two files with the same stem in different folders.
    jsonl_path = write_jsonl(tmp_path / "cat.jsonl", {"image": "p/a.jpg"}, {"image": "q/a.png"})
    manifest_error(jsonl_path, "line 2", "line 1", "'a'")


def test_malformed_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    manifest_error(empty, "header")
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"image": "a.jpg"}\n{"image": \n')
    manifest_error(bad_json, "line 2", "invalid JSON")
    not_object = write_jsonl(tmp_path / "list.jsonl", ["a.jpg"])
    manifest_error(not_object, "line 1", "JSON object")
    wrong_type = write_jsonl(tmp_path / "type.jsonl", {"image": ["a.jpg"]})
    manifest_error(wrong_type, "line 1", "'image' must be text")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("image\ncaf\xe9.jpg\n".encode("latin-1"))
    manifest_error(latin1, "UTF-8")


def test_unsupported_manifest_extension(tmp_path: Path) -> None:
    path = tmp_path / "cat.txt"
    path.write_text("image\na.jpg\n")
    manifest_error(path, "'.txt'")


def test_manifest_error_message_and_pickling(tmp_path: Path) -> None:
    error = ManifestError(tmp_path / "m.csv", "bad thing", 5)
    assert str(error) == f"manifest '{tmp_path / 'm.csv'}', line 5: bad thing"
    assert str(ManifestError("m.csv", "bad")) == "manifest 'm.csv': bad"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.reason, copy.line) == (error.path, error.reason, error.line)


# --- Listing images ------------------------------------------------------------------------


def test_iter_image_files_filters_sorts_and_recurses(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "b.JPG",
        "a.png",
        "notes.txt",
        "c.tiff",
        ".hidden.jpg",
        ".cache/x.jpg",
        "sub/z.webp",
        "sub/y.gif",
        "sub2/q.bmp",
        "d.jpeg",
    )
    found = [path.relative_to(tmp_path).as_posix() for path in iter_image_files([tmp_path])]
    assert found == ["a.png", "b.JPG", "d.jpeg", "sub/y.gif", "sub/z.webp", "sub2/q.bmp"]


def test_iter_image_files_yields_named_files_as_given(tmp_path: Path) -> None:
    (named,) = touch(tmp_path, "listing.tiff")
    folder_files = touch(tmp_path / "dir", "a.png")
    assert list(iter_image_files([str(named), tmp_path / "dir"])) == [named, *folder_files]


def test_iter_image_files_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        list(iter_image_files([tmp_path / "nope"]))


def test_symlinked_folder_is_followed(tmp_path: Path) -> None:
    touch(tmp_path / "elsewhere", "nike/shoe.jpg")
    catalogue = tmp_path / "cat"
    catalogue.mkdir()
    (catalogue / "nike").symlink_to(tmp_path / "elsewhere/nike", target_is_directory=True)
    (catalogue / "broken.jpg").symlink_to(tmp_path / "missing.jpg")
    assert list(iter_image_files([catalogue])) == [catalogue / "nike/shoe.jpg"]


def test_symlink_loop_does_not_hang(tmp_path: Path) -> None:
    catalogue = tmp_path / "cat"
    touch(catalogue, "a/one.jpg")
    (catalogue / "a/loop").symlink_to(catalogue, target_is_directory=True)
    (catalogue / "self.jpg").symlink_to(catalogue / "self.jpg")  # a looping file link
    assert list(iter_image_files([catalogue])) == [catalogue / "a/one.jpg"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions")
def test_unreadable_folder_raises(tmp_path: Path) -> None:
    touch(tmp_path, "locked/a.jpg")
    (tmp_path / "locked").chmod(0)
    try:
        with pytest.raises(PermissionError):
            list(iter_image_files([tmp_path]))
    finally:
        (tmp_path / "locked").chmod(0o755)


# --- Folder scans --------------------------------------------------------------------------


def test_scan_reads_brand_and_kind_from_layout(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "loose.jpg",
        "nike/shoe1.jpg",
        "nike/running/shoe2.png",
        "nike/Logos/swoosh.png",
        "logos/acme/mark.png",
        "logo/plain.png",
    )
    entries = by_id(scan_catalog_folder(tmp_path))
    assert entries["loose"] == CatalogEntry(tmp_path / "loose.jpg", "loose")
    assert (entries["shoe1"].brand, entries["shoe1"].kind) == ("nike", "product")
    assert (entries["shoe2"].brand, entries["shoe2"].kind) == ("nike", "product")
    assert (entries["swoosh"].brand, entries["swoosh"].kind) == ("nike", "logo")
    assert (entries["mark"].brand, entries["mark"].kind) == ("acme", "logo")
    assert (entries["plain"].brand, entries["plain"].kind) == (None, "logo")


def test_scan_disambiguates_colliding_stems(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "unique.jpg",
        "nike/shoe1.jpg",
        "adidas/shoe1.png",
        "shoe1.jpg",
        "puma/x.jpg",
        "puma/x.png",
    )
    ids = [entry.item_id for entry in scan_catalog_folder(tmp_path)]
    assert ids == ["shoe1", "unique", "adidas/shoe1", "nike/shoe1", "puma/x.jpg", "puma/x.png"]
    # Deterministic: the same folder lists the same way again.
    assert [entry.item_id for entry in scan_catalog_folder(tmp_path)] == ids


def test_scan_through_symlinked_brand_folder(tmp_path: Path) -> None:
    touch(tmp_path / "store", "shoe.jpg")
    catalogue = tmp_path / "cat"
    catalogue.mkdir()
    (catalogue / "nike").symlink_to(tmp_path / "store", target_is_directory=True)
    (entry,) = scan_catalog_folder(catalogue)
    assert entry == CatalogEntry(catalogue / "nike/shoe.jpg", "shoe", "nike")


def test_scan_requires_a_folder(tmp_path: Path) -> None:
    (image,) = touch(tmp_path, "a.jpg")
    with pytest.raises(NotADirectoryError):
        scan_catalog_folder(image)
    with pytest.raises(FileNotFoundError):
        scan_catalog_folder(tmp_path / "missing")


# --- load_catalog dispatch -----------------------------------------------------------------


def test_load_catalog_scans_a_plain_folder(tmp_path: Path) -> None:
    touch(tmp_path, "nike/a.jpg")
    assert load_catalog(tmp_path) == [CatalogEntry(tmp_path / "nike/a.jpg", "a", "nike")]


@pytest.mark.parametrize("name", ["manifest.csv", "manifest.jsonl"])
def test_load_catalog_uses_a_top_level_manifest(tmp_path: Path, name: str) -> None:
    touch(tmp_path, "nike/a.jpg", "nike/b.jpg")
    path = tmp_path / name
    if name.endswith(".csv"):
        path.write_text("image,item_id\nnike/a.jpg,only-a\n")
    else:
        write_jsonl(path, {"image": "nike/a.jpg", "item_id": "only-a"})
    assert load_catalog(tmp_path) == [CatalogEntry(tmp_path / "nike/a.jpg", "only-a")]


def test_load_catalog_refuses_two_top_level_manifests(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("image\na.jpg\n")
    write_jsonl(tmp_path / "manifest.jsonl", {"image": "a.jpg"})
    with pytest.raises(ManifestError, match=r"manifest\.csv and manifest\.jsonl"):
        load_catalog(tmp_path)


def test_load_catalog_reads_a_manifest_given_as_catalogue(tmp_path: Path) -> None:
    manifest = write_jsonl(tmp_path / "list.ndjson", {"image": "img/a.jpg"})
    assert load_catalog(manifest) == [CatalogEntry(tmp_path / "img/a.jpg", "a")]


def test_load_catalog_explicit_manifest_resolves_against_the_catalogue(tmp_path: Path) -> None:
    images = tmp_path / "images"
    touch(images, "x/unlisted.jpg")
    (tmp_path / "meta").mkdir()
    manifest = write_jsonl(tmp_path / "meta/m.jsonl", {"image": "x/a.jpg"})
    assert load_catalog(images, manifest) == [CatalogEntry(images / "x/a.jpg", "a")]
    # With a non-folder catalogue, the manifest's own folder is the root.
    (single,) = touch(tmp_path, "one.jpg")
    assert load_catalog(single, manifest)[0].image == tmp_path / "meta/x/a.jpg"


def test_load_catalog_single_image_file(tmp_path: Path) -> None:
    (image,) = touch(tmp_path, "brand/photo.webp")
    assert load_catalog(image) == [CatalogEntry(image, "photo")]


def test_load_catalog_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_catalog(tmp_path / "nowhere")
