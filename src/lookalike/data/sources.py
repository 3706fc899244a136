"""What a scoring job reads: image files, folders, file lists and tar shards of images.

Every input is one ``ImageInput`` with a ``key`` that names it for good, in result rows and in
the resume journal: the absolute path of a file, or ``SHARD#MEMBER`` for an image inside a tar
shard (WebDataset style: plain members whose names end in an image extension; other members,
such as the ``.json`` or ``.txt`` beside each image, are not images and are skipped).

Shards are read sequentially, in one pass, by whoever iterates them; their members' bytes
travel with the input, so decoding can happen anywhere (a worker process, a Ray task). A shard
that is corrupt part-way gives one input with an ``error`` after the members read before it.
"""

from __future__ import annotations

import gzip
import os
import tarfile
from collections.abc import Container, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, cast

from .decode import DEFAULT_MAX_BYTES, ImageDecodeError, ImageSource, read_image_bytes
from .manifest import IMAGE_EXTENSIONS, iter_image_files

__all__ = [
    "SHARD_ENDINGS",
    "ImageInput",
    "is_shard",
    "iter_inputs",
    "iter_shard",
    "list_sources",
    "read_file_list",
    "read_input_bytes",
    "read_inputs_bytes",
    "split_member_key",
]

SHARD_ENDINGS = (".tar", ".tar.gz", ".tgz")
MEMBER_SEPARATOR = "#"


@dataclass(frozen=True)
class ImageInput:
    """One image to score. ``member``: its name inside a tar shard, ``data``: its bytes (a
    plain file is read by the decoder); ``error``: why it cannot be read at all."""

    key: str
    data: bytes | None = None
    error: str | None = None
    member: str | None = None

    @property
    def query_id(self) -> str:
        """The file or member name without folders and extension (ISC's query id)."""
        name = self.member if self.member is not None else self.key.replace(os.sep, "/")
        return PurePosixPath(name).stem

    @property
    def source(self) -> ImageSource:
        """What to hand the decoder: the member's bytes, or the file's path."""
        return self.data if self.data is not None else self.key


def is_shard(path: str | os.PathLike[str]) -> bool:
    return os.fspath(path).lower().endswith(SHARD_ENDINGS)


def read_file_list(path: str | os.PathLike[str]) -> list[str]:
    """Paths listed one per line (blank lines and ``#`` comments skipped); relative paths are
    taken relative to the list's own folder, so a list travels with its dump."""
    base = Path(path).parent
    lines = (line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines())
    return [str(base / line) for line in lines if line and not line.startswith("#")]


def list_sources(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Files and shards named or found (recursively) in folders, as absolute paths, each once
    however it was named. Raises FileNotFoundError for a named path that does not exist."""
    found = iter_image_files([Path(p) for p in paths], also=SHARD_ENDINGS)
    return list(dict.fromkeys(os.path.abspath(path) for path in found))


def iter_inputs(
    paths: Iterable[str | os.PathLike[str]], *, skip: Container[str] = ()
) -> Iterator[ImageInput]:
    """Every input under ``paths`` (see :func:`list_sources`), shards opened and read in
    order; inputs whose key is in ``skip`` (already scored) are passed over unread."""
    for source in list_sources(paths):
        if is_shard(source):
            yield from iter_shard(source, skip=skip)
        elif source not in skip:
            yield ImageInput(source)


def iter_shard(
    shard: str, *, skip: Container[str] = (), max_bytes: int = DEFAULT_MAX_BYTES
) -> Iterator[ImageInput]:
    """The image members of one tar shard, in stored order, read in a single pass."""
    shard = os.path.abspath(shard)
    try:
        # One forward pass, gzip or not, never seeking back.
        with _open_shard(shard) as (archive, recorder):
            for member in archive:
                if not member.isfile() or not _is_image_member(member.name):
                    continue
                key = f"{shard}{MEMBER_SEPARATOR}{member.name}"
                if key in skip:
                    continue
                if member.size > max_bytes:
                    reason = _too_big(member.size, max_bytes)
                    yield ImageInput(key, error=reason, member=member.name)
                    continue
                handle = archive.extractfile(member)
                data = handle.read() if handle else b""
                yield ImageInput(key, data=data, member=member.name)
            _require_clean_end(archive, recorder)
    except (tarfile.TarError, OSError, EOFError) as exc:
        # The rest of the shard cannot be reached; say so once, under the shard's own name.
        reason = f"tar shard unreadable from here on ({type(exc).__name__}: {exc})"
        yield ImageInput(shard, error=reason)


def read_input_bytes(key: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The bytes of the input a result row names (a file, or ``SHARD#MEMBER``); raises
    ImageDecodeError when they cannot be read."""
    found = read_inputs_bytes([key], max_bytes=max_bytes)[key]
    if isinstance(found, ImageDecodeError):
        raise found
    return found


def read_inputs_bytes(
    keys: Iterable[str], *, max_bytes: int = DEFAULT_MAX_BYTES
) -> dict[str, bytes | ImageDecodeError]:
    """The bytes of many inputs, or why each cannot be read; each shard is read in one pass
    however many of its members are asked for."""
    found: dict[str, bytes | ImageDecodeError] = {}
    wanted: dict[str, dict[str, str]] = {}  # shard -> member name -> key
    for key in dict.fromkeys(keys):
        split = split_member_key(key)
        if split is not None:
            wanted.setdefault(split[0], {})[split[1]] = key
            continue
        try:
            found[key] = read_image_bytes(key, max_bytes=max_bytes)
        except ImageDecodeError as exc:
            found[key] = exc
    for shard, members in wanted.items():
        found.update(_read_members(shard, members, max_bytes))
    return found


def _read_members(
    shard: str, members: dict[str, str], max_bytes: int
) -> dict[str, bytes | ImageDecodeError]:
    """``members``: member name -> key. Members not found get an error naming why."""
    found: dict[str, bytes | ImageDecodeError] = {}
    missing = "no such member in the tar shard"
    try:
        with _open_shard(shard) as (archive, _):
            for member in archive:
                key = members.get(member.name)
                if key is None or key in found or not member.isfile():
                    continue
                if member.size > max_bytes:
                    found[key] = ImageDecodeError(key, _too_big(member.size, max_bytes))
                else:
                    handle = archive.extractfile(member)
                    found[key] = handle.read() if handle else b""
                if len(found) == len(members):
                    break
    except (tarfile.TarError, OSError, EOFError) as exc:
        missing = f"cannot read the tar shard ({exc})"
    for key in members.values():
        found.setdefault(key, ImageDecodeError(key, missing))
    return found


def split_member_key(key: str, shards: Container[str] | None = None) -> tuple[str, str] | None:
    """``SHARD#MEMBER`` -> (shard, member), where SHARD is the first prefix before a ``#``
    that is one of ``shards`` (default: any shard file that exists); None for a plain file."""
    start = 0
    while (at := key.find(MEMBER_SEPARATOR, start)) != -1:
        shard = key[:at]
        if shard in shards if shards is not None else is_shard(shard) and os.path.isfile(shard):
            return shard, key[at + 1 :]
        start = at + 1
    return None


class _TailRecorder:
    """A read-only stream that remembers the last bytes it returned, so that the tar block
    where iteration stopped can be inspected after tarfile has consumed it."""

    def __init__(self, raw: IO[bytes], keep: int = 1 << 16) -> None:
        self.raw, self.keep = raw, keep
        self.position = 0  # bytes returned so far
        self.tail = bytearray()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.position += len(data)
        self.tail += data
        if len(self.tail) > self.keep:
            del self.tail[: len(self.tail) - self.keep]
        return data

    def block_at(self, offset: int) -> bytes:
        start = offset - (self.position - len(self.tail))
        return bytes(self.tail[max(start, 0) : max(start, 0) + tarfile.BLOCKSIZE])


@contextmanager
def _open_shard(shard: str) -> Iterator[tuple[tarfile.TarFile, _TailRecorder]]:
    """A one-pass reader over a plain or gzipped tar, and the recorder under it."""
    with open(shard, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream = cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb")) if gzipped else raw
        recorder = _TailRecorder(stream)
        with tarfile.open(fileobj=recorder, mode="r|") as archive:  # type: ignore[call-overload]
            yield archive, recorder


def _require_clean_end(archive: tarfile.TarFile, recorder: _TailRecorder) -> None:
    """Raise ReadError unless iteration stopped at the end-of-archive marker.

    tarfile's iterator stops quietly at a damaged, cut or missing header after the first one;
    the members behind it would be lost without a word. At a genuine end, the block where it
    stopped is a whole block of zeros, and only zeros follow it.
    """
    block = recorder.block_at(archive.offset)
    if len(block) < tarfile.BLOCKSIZE:
        raise tarfile.ReadError(f"cut short at byte {archive.offset}: no end-of-archive marker")
    if block.count(0) != len(block):
        raise tarfile.ReadError(f"damaged header at byte {archive.offset}")
    while chunk := recorder.read(1 << 16):
        if chunk.count(0) != len(chunk):
            raise tarfile.ReadError(f"data after the end-of-archive marker at {archive.offset}")


def _is_image_member(name: str) -> bool:
    base = PurePosixPath(name).name
    return not base.startswith(".") and PurePosixPath(base).suffix.lower() in IMAGE_EXTENSIONS


def _too_big(size: int, max_bytes: int) -> str:
    return f"{size} bytes is over the {max_bytes}-byte limit"
