"""Tests for lookalike.data.sources: files, folders, file lists and tar shards as inputs."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from lookalike.data import sources
from lookalike.data.decode import ImageDecodeError
from lookalike.data.sources import (
    ImageInput,
    is_shard,
    iter_inputs,
    iter_shard,
    list_sources,
    read_file_list,
    read_input_bytes,
    read_inputs_bytes,
)
from lookalike.data.synthetic import synthetic_image

SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")

# A member name -> its bytes, or None for a directory entry; stored in this order.
Members = Sequence[tuple[str, bytes | None]]


def jpeg_bytes(seed: int) -> bytes:
    buffer = io.BytesIO()
    synthetic_image(seed, size=(48, 48)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def write_file(path: Path, data: bytes = b"") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write_shard(path: Path, members: Members) -> Path:
    """A tar shard (gzipped when the name says so) holding ``members`` in the given order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    gzipped = path.name.endswith((".tar.gz", ".tgz"))
    with tarfile.open(path, "w:gz") if gzipped else tarfile.open(path, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path


def fields(inputs: Iterable[ImageInput]) -> list[tuple[str, bytes | None, str | None]]:
    """(key, data, error) of each input."""
    return [(i.key, i.data, i.error) for i in inputs]


def key(shard: Path, member: str) -> str:
    return f"{os.path.abspath(shard)}#{member}"


def webdataset_members(count: int) -> list[tuple[str, bytes | None]]:
    """``count`` samples ``shard/000000.jpg`` ... each followed by its ``.json`` and ``.txt``."""
    members: list[tuple[str, bytes | None]] = []
    for index in range(count):
        stem = f"shard/{index:06d}"
        members += [(f"{stem}.jpg", jpeg_bytes(index)), (f"{stem}.json", b"{}")]
        members.append((f"{stem}.txt", b"a caption"))
    return members


# -- finding inputs ----------------------------------------------------------------------------


def test_folders_yield_images_and_shards_found_at_any_depth(tmp_path: Path) -> None:
    """Folders are walked recursively, in a fixed order, giving absolute paths: images and
    every kind of shard are collected, other files and hidden ones are not."""
    dump = tmp_path / "dump"
    a = write_file(dump / "a.jpg")
    b = write_file(dump / "b.PNG")
    write_file(dump / "notes.txt")
    write_file(dump / ".hidden.jpg")
    write_file(dump / "meta.json")
    nested = write_shard(dump / "sub" / "part-0.tar", [("x.jpg", b"1")])
    gz = write_shard(dump / "sub" / "deeper" / "part-1.tar.gz", [("y.jpg", b"2")])
    tgz = write_shard(dump / "z.TGZ", [("z.jpg", b"3")])
    c = write_file(dump / "sub" / "c.webp")

    # Each folder's files (sorted), then its subfolders (sorted).
    expected = [a, b, tgz, c, nested, gz]
    assert list_sources([dump]) == [str(p) for p in expected]
    assert [is_shard(p) for p in expected] == [False, False, True, False, True, True]


def test_named_files_are_taken_whatever_their_extension(tmp_path: Path) -> None:
    """A file named on the command line is an input even without an image extension."""
    odd = write_file(tmp_path / "photo.dat", jpeg_bytes(0))
    bare = write_file(tmp_path / "README")
    inputs = list(iter_inputs([odd, bare]))
    assert fields(inputs) == [(str(odd), None, None), (str(bare), None, None)]
    assert [i.member for i in inputs] == [None, None]
    assert [i.query_id for i in inputs] == ["photo", "README"]
    assert inputs[0].source == str(odd)  # files are read by the decoder, not here


def test_a_path_named_twice_or_relative_and_absolute_is_listed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """However a file is reached (folder, by name, relative, absolute), it is one input."""
    dump = tmp_path / "dump"
    a, b = write_file(dump / "a.jpg"), write_file(dump / "b.jpg")
    shard = write_shard(dump / "s.tar", [("m.jpg", b"x")])
    monkeypatch.chdir(tmp_path)
    named = [Path("dump"), dump, a, Path("dump/a.jpg"), shard, Path("dump/../dump/s.tar"), b]
    assert list_sources(named) == [str(a), str(b), str(shard)]
    assert [i.key for i in iter_inputs(named)] == [str(a), str(b), key(shard, "m.jpg")]


def test_a_missing_named_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        list_sources([tmp_path / "nowhere"])


def test_read_file_list_resolves_against_the_lists_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relative entries are relative to the list, not to the working folder; blank lines
    and ``#`` comments are skipped; surrounding spaces are trimmed."""
    dump = tmp_path / "dump"
    a, b = write_file(dump / "a.jpg"), write_file(dump / "sub" / "b.jpg")
    elsewhere = write_file(tmp_path / "other" / "c.jpg")
    listing = tmp_path / "lists" / "todo.txt"
    listing.parent.mkdir()
    listing.write_text(
        "# images to score\n"
        "../dump/a.jpg\n"
        "\n"
        "   \n"
        f"  {elsewhere}  \n"
        "#../dump/sub/b.jpg is listed below\n"
        "../dump/sub/b.jpg\r\n"
    )
    monkeypatch.chdir(dump / "sub")  # a relative entry must not resolve against this
    listed = read_file_list(listing)
    assert [os.path.normpath(p) for p in listed] == [str(a), str(elsewhere), str(b)]
    assert list_sources(listed) == [str(a), str(elsewhere), str(b)]


def test_read_file_list_skips_indented_comments(tmp_path: Path) -> None:
    a = write_file(tmp_path / "a.jpg")
    listing = tmp_path / "todo.txt"
    listing.write_text("a.jpg\n    # an indented comment\n")
    assert [os.path.normpath(p) for p in read_file_list(listing)] == [str(a)]


# -- tar shards --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", SHARD_SUFFIXES)
def test_shard_members_come_in_stored_order_with_keys_and_query_ids(
    tmp_path: Path, suffix: str
) -> None:
    """Image members only (not .json/.txt, directories or hidden files), in the order they
    are stored, each keyed ``SHARD#MEMBER`` and carrying its own bytes."""
    images = {
        "dir/000123.jpg": jpeg_bytes(1),
        "dir/000007.png": jpeg_bytes(2),  # content is not checked here, only carried
        "top.JPEG": jpeg_bytes(3),
        "a/b/c/000001.webp": jpeg_bytes(4),
    }
    members: list[tuple[str, bytes | None]] = [
        ("dir", None),
        ("dir/000123.jpg", images["dir/000123.jpg"]),
        ("dir/000123.json", b'{"caption": "x"}'),
        ("dir/000123.txt", b"caption"),
        ("dir/000007.png", images["dir/000007.png"]),
        ("dir/.000008.jpg", b"hidden"),
        ("looks_like.jpg", None),  # a directory whose name ends in .jpg
        ("top.JPEG", images["top.JPEG"]),
        ("a/b/c/000001.webp", images["a/b/c/000001.webp"]),
    ]
    shard = write_shard(tmp_path / f"part-000{suffix}", members)
    expected = [(key(shard, name), data, None) for name, data in images.items()]
    assert fields(iter_shard(str(shard))) == expected
    found = list(iter_inputs([tmp_path]))
    assert fields(found) == expected
    assert [i.query_id for i in found] == ["000123", "000007", "top", "000001"]
    assert [i.member for i in found] == list(images)
    assert all(i.source == i.data and i.error is None for i in found)


def test_relative_shard_path_gives_absolute_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shard = write_shard(tmp_path / "s.tar", [("000001.jpg", b"1")])
    monkeypatch.chdir(tmp_path)
    assert [i.key for i in iter_shard("s.tar")] == [key(shard, "000001.jpg")]


def test_skip_passes_over_done_members_and_files(tmp_path: Path) -> None:
    """Inputs already scored (their keys in ``skip``) are not yielded; the rest are, in
    order, with their bytes."""
    shard = write_shard(tmp_path / "dump" / "s.tar", webdataset_members(4))
    photo = write_file(tmp_path / "dump" / "a.jpg")
    done = {key(shard, "shard/000001.jpg"), key(shard, "shard/000003.jpg"), str(photo)}
    inputs = list(iter_inputs([tmp_path / "dump"], skip=done))
    assert [i.key for i in inputs] == [
        key(shard, "shard/000000.jpg"),
        key(shard, "shard/000002.jpg"),
    ]
    assert inputs[1].data == jpeg_bytes(2)
    assert list(iter_shard(str(shard), skip=done)) == inputs


def test_member_over_max_bytes_becomes_an_error_input(tmp_path: Path) -> None:
    """A member over the byte limit is an error input (its bytes never read); the members
    after it still come."""
    small, big = b"s" * 100, b"b" * 5000
    shard = write_shard(
        tmp_path / "s.tar", [("000.jpg", small), ("001.jpg", big), ("002.jpg", small)]
    )
    inputs = list(iter_shard(str(shard), max_bytes=1000))
    assert [i.key for i in inputs] == [key(shard, f"00{n}.jpg") for n in range(3)]
    assert [i.data for i in inputs] == [small, None, small]
    assert inputs[0].error is None and inputs[2].error is None
    assert inputs[1].error is not None and "5000 bytes" in inputs[1].error
    assert "1000-byte limit" in inputs[1].error
    assert (inputs[1].query_id, inputs[1].member) == ("001", "001.jpg")


def shard_cut_in_the_third_member(tmp_path: Path, where: str) -> tuple[Path, list[str]]:
    """A valid 5-member shard damaged inside its 3rd member; returns it and the keys of
    the two members before the damage."""
    members = [(f"d/{n:06d}.jpg", jpeg_bytes(n)) for n in range(5)]
    shard = write_shard(tmp_path / "s.tar", members)
    with tarfile.open(shard) as archive:
        third = archive.getmembers()[2]
    data = shard.read_bytes()
    assert third.size > 100
    if where == "mid_data":
        damaged = data[: third.offset_data + third.size // 2]
    elif where == "mid_header":
        damaged = data[: third.offset + 256]
    elif where == "at_header":  # cut on the block boundary where its header starts
        damaged = data[: third.offset]
    else:  # corrupt_header: the bytes are all there, but the header's checksum is wrong
        damaged = data[: third.offset] + b"\xff" * 100 + data[third.offset + 100 :]
    shard.write_bytes(damaged)
    return shard, [key(shard, name) for name, _ in members[:2]]


@pytest.mark.parametrize(
    "where",
    [
        "mid_data",
        "mid_header",
        "at_header",
        "corrupt_header",
    ],
)
def test_shard_damaged_part_way_gives_readable_members_then_one_error(
    tmp_path: Path, where: str
) -> None:
    """A shard cut or corrupted inside its 3rd member: the 2 members before are yielded
    whole, then exactly ONE error input keyed by the shard itself."""
    shard, readable = shard_cut_in_the_third_member(tmp_path, where)
    inputs = list(iter_shard(str(shard)))
    assert [i.key for i in inputs] == [*readable, str(shard)]
    assert [i.data for i in inputs[:2]] == [jpeg_bytes(0), jpeg_bytes(1)]
    assert all(i.error is None for i in inputs[:2])
    error = inputs[-1]
    assert error.data is None and error.error is not None
    assert "tar shard unreadable" in error.error


def test_truncated_gzipped_shard_gives_readable_members_then_one_error(tmp_path: Path) -> None:
    """The same for a .tar.gz cut in the middle of a member's compressed data."""
    # Incompressible members, so that the compressed stream's middle is a member's data.
    members = [(f"{n:06d}.jpg", os.urandom(4000)) for n in range(4)]
    shard = write_shard(tmp_path / "s.tar.gz", members)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) * 5 // 8])  # inside the 3rd member
    inputs = list(iter_shard(str(shard)))
    assert [i.key for i in inputs] == [key(shard, name) for name, _ in members[:2]] + [str(shard)]
    assert [i.data for i in inputs[:2]] == [data for _, data in members[:2]]
    assert inputs[-1].error is not None and "unreadable" in inputs[-1].error


@pytest.mark.parametrize("content", [b"this is not a tar file\n" * 100, b"short", b""])
def test_a_file_named_tar_that_is_not_a_tar_is_one_error_input(
    tmp_path: Path, content: bytes
) -> None:
    fake = write_file(tmp_path / "dump" / "x.tar", content)
    inputs = list(iter_inputs([tmp_path / "dump"]))
    assert len(inputs) == 1
    assert inputs[0].key == str(fake) and inputs[0].data is None
    assert inputs[0].error is not None and "unreadable" in inputs[0].error
    assert (inputs[0].member, inputs[0].query_id) == (None, "x")


# -- reading an input again by its key --------------------------------------------------------


def test_read_input_bytes_for_files_and_members(tmp_path: Path) -> None:
    photo = write_file(tmp_path / "a.jpg", jpeg_bytes(0))
    shard = write_shard(tmp_path / "s.tar.gz", webdataset_members(3))
    assert read_input_bytes(str(photo)) == jpeg_bytes(0)
    for item in iter_shard(str(shard)):
        assert read_input_bytes(item.key) == item.data
    assert read_input_bytes(key(shard, "shard/000002.jpg")) == jpeg_bytes(2)


def test_read_input_bytes_names_a_missing_member_or_file(tmp_path: Path) -> None:
    shard = write_shard(tmp_path / "s.tar", webdataset_members(2))
    missing = key(shard, "shard/000009.jpg")
    with pytest.raises(ImageDecodeError) as info:
        read_input_bytes(missing)
    assert info.value.source == missing
    assert "no such member" in str(info.value)
    with pytest.raises(ImageDecodeError) as info:
        read_input_bytes(str(tmp_path / "gone.jpg"))
    assert info.value.source == str(tmp_path / "gone.jpg")


def test_read_inputs_bytes_reads_each_shard_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many members of one shard, a missing member and a missing file in one call: the shard
    is opened once, every key gets its bytes or the reason it has none."""
    photo = write_file(tmp_path / "a.jpg", jpeg_bytes(0))
    shard = write_shard(tmp_path / "s.tar", webdataset_members(3))
    opened: list[str] = []
    real_open = sources._open_shard
    monkeypatch.setattr(sources, "_open_shard", lambda path: opened.append(path) or real_open(path))
    wanted = [key(shard, f"shard/00000{n}.jpg") for n in (2, 0, 9)]
    found = read_inputs_bytes([*wanted, str(photo), str(tmp_path / "gone.jpg")])
    assert opened == [str(shard)]
    assert found[wanted[0]] == jpeg_bytes(2) and found[wanted[1]] == jpeg_bytes(0)
    assert isinstance(found[wanted[2]], ImageDecodeError)
    assert "no such member" in str(found[wanted[2]])
    assert found[str(photo)] == jpeg_bytes(0)
    assert isinstance(found[str(tmp_path / "gone.jpg")], ImageDecodeError)


def test_read_input_bytes_refuses_a_member_over_max_bytes(tmp_path: Path) -> None:
    shard = write_shard(tmp_path / "s.tar", [("big.jpg", b"x" * 3000)])
    with pytest.raises(ImageDecodeError, match="limit"):
        read_input_bytes(key(shard, "big.jpg"), max_bytes=1000)


def test_read_input_bytes_of_a_damaged_shard_is_a_decode_error(tmp_path: Path) -> None:
    shard, _ = shard_cut_in_the_third_member(tmp_path, "mid_data")
    with pytest.raises(ImageDecodeError, match="cannot read the tar shard"):
        read_input_bytes(key(shard, "d/000004.jpg"))


def test_keys_with_hash_in_a_folder_name_still_resolve(tmp_path: Path) -> None:
    """A ``#`` before the shard's name is part of the path, not the member separator."""
    folder = tmp_path / "batch#7" / "x#y.tar.d"
    photo = write_file(folder / "a#1.jpg", jpeg_bytes(0))
    shard = write_shard(folder / "s#2.tar", [("dir/000123.jpg", jpeg_bytes(1))])
    inputs = list(iter_inputs([tmp_path]))
    assert [i.key for i in inputs] == [str(photo), key(shard, "dir/000123.jpg")]
    assert [i.query_id for i in inputs] == ["a#1", "000123"]
    assert [i.member for i in inputs] == [None, "dir/000123.jpg"]
    assert read_input_bytes(inputs[0].key) == jpeg_bytes(0)
    assert read_input_bytes(inputs[1].key) == jpeg_bytes(1)


def test_member_names_with_hash_keep_their_whole_query_id(tmp_path: Path) -> None:
    """A ``#`` inside a member's name stays part of its name and query id."""
    shard = write_shard(tmp_path / "s.tar", [("dir/a#1.jpg", jpeg_bytes(0))])
    [item] = iter_shard(str(shard))
    assert read_input_bytes(item.key) == jpeg_bytes(0)
    assert item.query_id == "a#1"
