"""Storing derived files while extraction runs: a few concurrent uploads behind a bounded queue.

The extractor hands over each still as soon as it is encoded, its PNG in memory (`Upload.data`) or in a
work file; `offer` blocks once `depth` uploads wait, so decoding slows to the store's pace instead of piling
stills up in memory or on disk (a still's work file is deleted once stored). Each object is one PUT carrying
its metadata, retention, digest tags and the SHA-256 the server checks and echoes (see
`EvidenceStore.put_stream`): the stored bytes are proven without a second request. On top of that a file's
stored SHA-256 must equal the one the encoder computed, so a file changed on disk between the two is caught.
The first failure stops further uploads and is raised to the caller (and to the extractor through `offer`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import IntegrityError

#: stores one file (an `Upload`); returns its custody object reference
StoreFn = Callable[["Upload"], dict[str, Any]]


@dataclass(frozen=True)
class Upload:
    name: str  # the file's name in the extraction's output (unique within it)
    path: Path
    kind: str  # still, thumbnail, contact_sheet, frames_manifest
    content_type: str | None = None
    sha256: str | None = None  # what the bytes must hash to, when known before sending
    remove_after: bool = False  # delete the local file once stored (keeps the work dir small)
    data: bytes | None = None  # the bytes, when they were made in memory and never written: `path` only names them


class Uploads:
    """Concurrent uploads with back-pressure; `done()` waits for all of them and returns name -> reference."""

    def __init__(self, store: StoreFn, threads: int, depth: int | None = None,
                 on_stored: Callable[[int], None] | None = None) -> None:
        self._store = store
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="frames-upload")
        self._room = threading.BoundedSemaphore(depth or 2 * max(1, threads))
        self._lock = threading.Lock()
        self._futures: dict[str, Future[dict[str, Any]]] = {}
        self._names: set[str] = set()
        self._error: BaseException | None = None
        self._stored: list[dict[str, Any]] = []
        self._on_stored = on_stored

    def offer(self, item: Upload) -> None:
        """Queue one file (a name is stored once); blocks while the queue is full; raises the first failure."""
        self._raise_failure()
        with self._lock:
            if item.name in self._names:
                return
            self._names.add(item.name)
        self._room.acquire()
        self._raise_failure(release=True)
        fut = self._pool.submit(self._one, item)
        with self._lock:
            self._futures[item.name] = fut
        fut.add_done_callback(lambda _f: self._room.release())

    def _one(self, item: Upload) -> dict[str, Any]:
        try:
            ref = self._store(item)
            if item.sha256 and ref.get("encoder_sha256", ref["sha256"]) != item.sha256:
                raise IntegrityError(f"{item.path.name} was stored with SHA-256 {ref['sha256']} but the encoder "
                                     f"wrote {item.sha256}: the work directory changed under us; not recording")
            if item.remove_after and item.data is None:
                item.path.unlink(missing_ok=True)
        except BaseException as exc:
            with self._lock:
                self._error = self._error or exc
            raise
        with self._lock:
            self._stored.append(ref)
            n = len(self._stored)
        if self._on_stored:
            self._on_stored(n)
        return ref

    def _raise_failure(self, release: bool = False) -> None:
        with self._lock:
            err = self._error
        if err is not None:
            if release:
                self._room.release()
            raise err

    @property
    def failed(self) -> bool:
        with self._lock:
            return self._error is not None

    def stored(self) -> list[dict[str, Any]]:
        """References of everything stored so far (for the record when the run fails)."""
        with self._lock:
            return list(self._stored)

    def done(self) -> dict[str, dict[str, Any]]:
        """Wait for every upload; name -> object reference. Raises the first failure."""
        with self._lock:
            futures = dict(self._futures)
        for fut in futures.values():
            fut.exception()  # wait, whatever the outcome
        self._raise_failure()
        return {name: fut.result() for name, fut in futures.items()}

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
