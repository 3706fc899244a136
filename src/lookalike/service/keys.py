"""API keys with roles, stored hashed in a JSON file.

A key reads ``lk_<key id>_<secret>``. The key id is public (it names the key in logs and in
``lookalike keys list``); the secret is 32 random bytes from ``secrets`` and is never stored:
the file keeps a per-key salt and SHA-256(salt + secret).

Why SHA-256 and not scrypt/PBKDF2: slow KDFs protect low-entropy passwords from guessing. A
256-bit random secret cannot be guessed whatever the hash, and a slow KDF would cost tens of
milliseconds of CPU on every request — on 2 cores, straight into the latency budget. The
lookup goes by key id, and digests are compared in constant time.

The server re-reads the file when it changes (checked at most every ``reload_s``), so
``lookalike keys revoke`` reaches a running server within about a second.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

KEYS_FORMAT = "lookalike.keys"
KEYS_VERSION = 1
KEY_PREFIX = "lk_"


class Role(StrEnum):
    """``moderator`` may check listings and read the catalogue; ``admin`` may also change it."""

    MODERATOR = "moderator"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        return self is Role.ADMIN or needed is Role.MODERATOR


class KeysFileError(ValueError):
    pass


@dataclass(frozen=True)
class ApiKey:
    """A stored key: everything but the secret."""

    key_id: str
    name: str
    role: Role
    salt: str
    digest: str
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def public_dict(self) -> dict[str, Any]:
        """What ``keys list`` shows: no salt, no digest."""
        return {
            "key_id": self.key_id,
            "name": self.name,
            "role": self.role.value,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def _digest(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def split_key(presented: str) -> tuple[str, str] | None:
    """``lk_<id>_<secret>`` -> (id, secret); None for anything else."""
    if not presented.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = presented[len(KEY_PREFIX) :].partition("_")
    if not sep or not key_id or not secret or len(presented) > 200:
        return None
    return key_id, secret


class KeyStore:
    """The keys file. Writers (the CLI) lock and replace it atomically; readers (the server)
    reload it when its mtime or size changes."""

    def __init__(self, path: str | os.PathLike[str], *, reload_s: float = 1.0) -> None:
        self.path = Path(path)
        self.reload_s = reload_s
        self._lock = threading.Lock()
        self._keys: dict[str, ApiKey] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked_at = float("-inf")

    # -- reading -----------------------------------------------------------------------------

    def load(self) -> None:
        """Read the file now; KeysFileError when it is missing or malformed."""
        with self._lock:
            self._reload(force=True)

    def all_keys(self) -> list[ApiKey]:
        with self._lock:
            self._reload(force=True)
            return list(self._keys.values())

    def authenticate(self, presented: str) -> ApiKey | None:
        """The active key matching ``presented``, else None."""
        parts = split_key(presented)
        if parts is None:
            return None
        key_id, secret = parts
        with self._lock:
            self._maybe_reload()
            key = self._keys.get(key_id)
        if key is None or not key.active:
            return None
        return key if hmac.compare_digest(key.digest, _digest(key.salt, secret)) else None

    # -- writing (the CLI) ---------------------------------------------------------------------

    def create(self, name: str, role: Role) -> tuple[ApiKey, str]:
        """Add a key; returns it with the full key text, which is shown once and never stored."""
        if not name.strip():
            raise ValueError("a key needs a name (who or what uses it)")
        with self._writing() as keys:
            key_id = secrets.token_hex(6)
            while key_id in keys:  # 48 bits: a clash is near impossible, but cheap to rule out
                key_id = secrets.token_hex(6)
            secret = secrets.token_urlsafe(32)
            salt = secrets.token_hex(16)
            key = ApiKey(key_id, name.strip(), role, salt, _digest(salt, secret), _now())
            keys[key_id] = key
        return key, f"{KEY_PREFIX}{key_id}_{secret}"

    def revoke(self, key_id: str) -> ApiKey | None:
        """Mark a key revoked (kept for the record); None when there is no such key."""
        with self._writing() as keys:
            key = keys.get(key_id)
            if key is None:
                return None
            if key.active:
                keys[key_id] = key = replace(key, revoked_at=_now())
        return key

    # -- internals ---------------------------------------------------------------------------

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked_at >= self.reload_s:
            self._checked_at = now
            # A broken or vanished file mid-run: keep serving with the keys we have.
            with contextlib.suppress(KeysFileError):
                self._reload(force=False)

    def _reload(self, *, force: bool) -> None:
        try:
            info = self.path.stat()
        except FileNotFoundError as exc:
            raise KeysFileError(
                f"{self.path}: no keys file; create a key with "
                f"`lookalike keys create --role admin --name NAME --keys-file {self.path}`"
            ) from exc
        stamp = (info.st_mtime_ns, info.st_size)
        if not force and stamp == self._stamp:
            return
        self._keys = _read_keys(self.path)
        self._stamp = stamp

    @contextlib.contextmanager
    def _writing(self) -> Iterator[dict[str, ApiKey]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with open(lock_path, "a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)  # one writer at a time across processes
            keys = _read_keys(self.path) if self.path.exists() else {}
            yield keys
            _write_keys(self.path, keys)
        with self._lock:
            self._reload(force=True)


def _read_keys(path: Path) -> dict[str, ApiKey]:
    try:
        data = json.loads(path.read_text())
        if data.get("format") != KEYS_FORMAT or data.get("version") != KEYS_VERSION:
            raise KeysFileError(f"{path}: not a lookalike keys file (version {KEYS_VERSION})")
        keys = [
            ApiKey(
                key_id=str(entry["key_id"]),
                name=str(entry["name"]),
                role=Role(entry["role"]),
                salt=str(entry["salt"]),
                digest=str(entry["digest"]),
                created_at=str(entry["created_at"]),
                revoked_at=entry.get("revoked_at"),
            )
            for entry in data["keys"]
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise KeysFileError(f"{path}: unreadable keys file ({exc})") from exc
    return {key.key_id: key for key in keys}


def _write_keys(path: Path, keys: dict[str, ApiKey]) -> None:
    """Write a complete new file, then rename it over the old one: readers never see half."""
    payload = {
        "format": KEYS_FORMAT,
        "version": KEYS_VERSION,
        "keys": [{**asdict(key), "role": key.role.value} for key in keys.values()],
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)  # digests are not secrets, but nobody else needs to read them
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
