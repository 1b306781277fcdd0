"""Writing a bag into a zip in one streamed pass, hashing each member as it is written."""

from __future__ import annotations

import hashlib
import io
import queue
import threading
import zipfile
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.export.format import THUMB_MAX


def prefetch(chunks: Iterable[bytes], depth: int = 4) -> Iterator[bytes]:
    """Read ahead in a thread so the network read overlaps hashing and writing.

    Bounded to `depth` chunks, so memory stays at depth x chunk size whatever the object size.
    """
    q: queue.Queue[tuple[int, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def pump() -> None:
        it = iter(chunks)
        try:
            for c in it:
                while not stop.is_set():
                    try:
                        q.put((0, c), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
            q.put((1, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put((2, exc))
        finally:
            close = getattr(it, "close", None)
            if close:
                close()

    t = threading.Thread(target=pump, name="bundle-prefetch", daemon=True)
    t.start()
    try:
        while True:
            kind, item = q.get()
            if kind == 0:
                yield item
            elif kind == 1:
                return
            else:
                raise item
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.05)


class BagZip:
    """Writes bag members into a zip and remembers the payload manifest."""

    def __init__(self, path: Path, bag_name: str, when: datetime) -> None:
        self.zf = zipfile.ZipFile(path, "w", allowZip64=True)
        self.bag = bag_name
        self.date_time = when.timetuple()[:6]
        self.payload: list[tuple[str, str, int]] = []  # (sha256, path, size)
        self.written: dict[str, str] = {}  # every member so far: path -> sha256 (for the signed file list)

    def _info(self, name: str, stored: bool) -> zipfile.ZipInfo:
        zi = zipfile.ZipInfo(f"{self.bag}/{name}", self.date_time)
        zi.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
        zi.external_attr = 0o100644 << 16
        return zi

    def write_stream(self, name: str, chunks: Iterable[bytes], *, stored: bool = True,
                     progress: Callable[[int], None] | None = None,
                     tee: io.BytesIO | None = None) -> tuple[str, int]:
        """Copy chunks into the zip, hashing in the same pass; returns (sha256, size)."""
        h = hashlib.sha256()
        size = 0
        with self.zf.open(self._info(name, stored), "w", force_zip64=True) as out:
            for chunk in chunks:
                h.update(chunk)
                out.write(chunk)
                size += len(chunk)
                if tee is not None and tee.tell() + len(chunk) <= THUMB_MAX:
                    tee.write(chunk)
                if progress:
                    progress(len(chunk))
        digest = h.hexdigest()
        if name in self.written:
            raise ValueError(f"{name} written twice into the bag")
        self.written[name] = digest
        if name.startswith("data/"):
            self.payload.append((digest, name, size))
        return digest, size

    def write_bytes(self, name: str, data: bytes, *, stored: bool = False) -> str:
        return self.write_stream(name, [data], stored=stored)[0]

    def close(self) -> None:
        self.zf.close()
