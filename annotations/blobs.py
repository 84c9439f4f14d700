"""Where the store keeps image bytes: content-addressed, in a folder or in the database.

An image is kept once, under the sha256 of its bytes, whatever study it is in. A folder keeps
the database small (the default beside a SQLite file: ``<database folder>/blobs``); the
database keeps everything in one place to back up (the default for other databases). Set
``LRAN_REVIEW_BLOBS`` to ``database`` or to a folder to choose.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotations.schema import Blob, insert

ENV_BLOBS = "LRAN_REVIEW_BLOBS"


class BlobError(OSError):
    """Image bytes that cannot be written, or that are missing or corrupt when read."""


class BlobStore(Protocol):
    """Image bytes by content hash."""

    def put(self, session: Session, item_hash: str, data: bytes) -> None:
        """Keeps ``data`` under ``item_hash`` (once; a second put of the same hash is a no-op),
        inside the caller's transaction where the store is the database."""

    def get(self, session: Session, item_hash: str) -> bytes | None:
        """The bytes kept under ``item_hash``, None when none are; BlobError when corrupt."""

    def describe(self) -> str:
        """Where the bytes are, for messages and the README."""


def _check(item_hash: str, data: bytes) -> bytes:
    if hashlib.sha256(data).hexdigest() != item_hash:
        raise BlobError(f"the stored image {item_hash[:12]} does not match its hash (corrupt)")
    return data


class FolderBlobs:
    """Image bytes as files ``<folder>/<hash[:2]>/<hash>``, written atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, item_hash: str) -> Path:
        return self.folder / item_hash[:2] / item_hash

    def put(self, session: Session, item_hash: str, data: bytes) -> None:
        path = self._path(item_hash)
        if path.is_file():
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{item_hash}.{os.getpid()}.tmp")
            with tmp.open("wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(path)  # a reader never sees half a file
        except OSError as err:
            raise BlobError(f"cannot keep the image in {self.folder}: {err}") from err

    def get(self, session: Session, item_hash: str) -> bytes | None:
        path = self._path(item_hash)
        if not path.is_file():
            return None
        return _check(item_hash, path.read_bytes())

    def describe(self) -> str:
        return f"the folder {self.folder}"


class DatabaseBlobs:
    """Image bytes in the ``blobs`` table, written in the same transaction as their case."""

    def put(self, session: Session, item_hash: str, data: bytes) -> None:
        session.execute(
            insert(session, Blob).values(hash=item_hash, data=data).on_conflict_do_nothing()
        )

    def get(self, session: Session, item_hash: str) -> bytes | None:
        data = session.execute(select(Blob.data).where(Blob.hash == item_hash)).scalar()
        return None if data is None else _check(item_hash, bytes(data))

    def describe(self) -> str:
        return "the database"


def blob_store(setting: str | None, sqlite_file: Path | None) -> BlobStore:
    """The blob store a setting names: ``database``, a folder, or (None/empty) the default:
    ``blobs`` beside a SQLite database file, else the database."""
    setting = (setting or "").strip()
    if setting == "database":
        return DatabaseBlobs()
    if setting:
        return FolderBlobs(Path(setting).expanduser().resolve())
    if sqlite_file is not None:
        return FolderBlobs(sqlite_file.parent / "blobs")
    return DatabaseBlobs()
