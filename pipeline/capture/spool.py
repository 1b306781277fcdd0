"""Durable local spool between the recorder and the evidence store.

Segments land in `<root>/<camera>/`. `<root>/journal.jsonl` is the source of truth: one fsync'd JSON line
per state change, so a `kill -9` at any point leaves a journal a new process can resume from:

    open      a segment file was created by ffmpeg (it may be cut short by a crash)
    closed    ffmpeg closed it (or recovery closed it after a crash: partial)
    hashed    SHA-256 and size computed at first contact; the item is now uploadable
    uploaded  the uploader returned a receipt (version id)

Upload contract (`drain`): items are offered in closing order with a stable `item_id`. The uploader must
be idempotent on `item_id`: a crash between a successful upload and the `uploaded` journal line means the
same item is offered again, and the uploader must then find the existing object (e.g. by an object key
or metadata derived from item_id and sha256) and return its receipt instead of storing a second copy.
An uploader that raises leaves the item pending; `drain` stops there (keeping order) and a later call
retries. Recording never waits for uploads.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import CustodyError, IntegrityError, UsageError

from .models import SegmentInfo
from .segments import SegmentListReader, sha256_file

log = logging.getLogger(__name__)

JOURNAL = "journal.jsonl"


class SpoolError(CustodyError):
    """Base class for spool problems (exit 1 unless a subclass says otherwise)."""


class SpoolBusy(UsageError, SpoolError):
    """Another live recorder holds this camera's spool directory; stop it or use another spool (exit 2)."""


class SpoolIntegrityError(IntegrityError, SpoolError):
    """A spooled file no longer matches the hash taken at first contact; it is not uploaded (exit 1)."""


@dataclass(frozen=True)
class SpoolItem:
    item_id: str
    segment: SegmentInfo

    @property
    def path(self) -> Path:
        return self.segment.path

    @property
    def sha256(self) -> str:
        return self.segment.sha256


@dataclass(frozen=True)
class UploadReceipt:
    item_id: str
    version_id: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class DrainResult:
    uploaded: list[UploadReceipt] = field(default_factory=list)
    pending: int = 0
    error: str | None = None
    recovered: list[SegmentInfo] = field(default_factory=list)
    busy: bool = False


def _now() -> datetime:
    return datetime.now(UTC)


class Spool:
    """Journal + directory layout. Safe for several recorder threads/processes and one drainer at a time."""

    def __init__(self, root: Path, *, max_bytes: int | None = None, prune_uploaded: bool = False) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.journal = self.root / JOURNAL
        self.max_bytes = max_bytes
        self.prune_uploaded = prune_uploaded
        self._lock = threading.RLock()
        self._over_cap_warned = False

    # -- layout and locks ---------------------------------------------------------------------------------
    def camera_dir(self, camera: str) -> Path:
        d = self.root / camera
        d.mkdir(parents=True, exist_ok=True)
        return d

    @contextlib.contextmanager
    def _flock(self, path: Path, *, blocking: bool) -> Iterator[bool]:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # closing releases the lock

    @contextlib.contextmanager
    def camera_lock(self, camera: str) -> Iterator[None]:
        """Held by a live recorder for its whole run; released by the kernel even on kill -9."""
        with self._flock(self.camera_dir(camera) / ".recording.lock", blocking=False) as got:
            if not got:
                raise SpoolBusy(f"camera {camera!r} is being recorded into {self.root} by another process")
            yield

    # -- journal --------------------------------------------------------------------------------------------
    def _append(self, record: dict[str, Any]) -> None:
        record = {"at": _now().isoformat(), **record}
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        with self._lock, self._flock(self.root / ".journal.lock", blocking=True):
            new = not self.journal.exists()
            fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size:
                    with open(self.journal, "rb") as f:
                        f.seek(size - 1)
                        if f.read(1) != b"\n":  # torn line from a crash: never glue a record onto it
                            line = b"\n" + line
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if new:
                dfd = os.open(self.root, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)

    def read_journal(self) -> list[dict[str, Any]]:
        """All complete records; a torn last line (crash mid-write) is ignored."""
        out = []
        try:
            data = self.journal.read_text()
        except FileNotFoundError:
            return []
        for line in data.splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("spool %s: ignoring torn journal line %r", self.root, line[:80])
        return out

    def record_open(self, camera: str, path: Path, meta: dict[str, Any]) -> None:
        self._append({"event": "open", "item_id": f"{camera}/{path.name}", "camera": camera, "path": str(path),
                      **meta})

    def record_closed(self, camera: str, path: Path, *, partial: bool) -> None:
        self._append({"event": "closed", "item_id": f"{camera}/{path.name}", "partial": partial})

    def record_hashed(self, seg: SegmentInfo, **extra: Any) -> None:
        self._append({"event": "hashed", "item_id": seg.item_id, "segment": seg.to_json(), **extra})
        self.check_cap()

    def record_uploaded(self, receipt: UploadReceipt) -> None:
        self._append({"event": "uploaded", "item_id": receipt.item_id, "version_id": receipt.version_id,
                      "extra": receipt.extra})

    # -- state ----------------------------------------------------------------------------------------------
    def _states(self) -> tuple[dict[str, dict], dict[str, SegmentInfo], set[str], list[str]]:
        opens: dict[str, dict] = {}
        hashed: dict[str, SegmentInfo] = {}
        uploaded: set[str] = set()
        order: list[str] = []
        for rec in self.read_journal():
            iid = rec.get("item_id")
            ev = rec.get("event")
            if ev == "open":
                opens[iid] = rec
            elif ev == "hashed" and iid not in hashed:
                hashed[iid] = SegmentInfo.from_json(rec["segment"])
                order.append(iid)
            elif ev == "uploaded":
                uploaded.add(iid)
        return opens, hashed, uploaded, order

    def pending(self) -> list[SpoolItem]:
        """Hashed but not yet uploaded, in the order they were closed."""
        _, hashed, uploaded, order = self._states()
        return [SpoolItem(i, hashed[i]) for i in order if i not in uploaded]

    def status(self) -> dict[str, Any]:
        """Counts and bytes for monitoring; `over_cap` is what an operator must act on."""
        pend = self.pending()
        total = sum(p.stat().st_size for p in self.root.glob("*/*.ts"))
        over = self.max_bytes is not None and total > self.max_bytes
        return {"root": str(self.root), "pending_items": len(pend), "pending_bytes": sum(p.segment.size for p in pend),
                "total_bytes": total, "max_bytes": self.max_bytes, "over_cap": over}

    def check_cap(self) -> bool:
        """Warn loudly (once per crossing) when the spool exceeds its cap; never delete evidence to make room."""
        if self.max_bytes is None:
            return False
        total = sum(p.stat().st_size for p in self.root.glob("*/*.ts"))  # cheap: no journal scan per segment
        over = total > self.max_bytes
        if over and not self._over_cap_warned:
            log.warning("SPOOL OVER CAP: %s holds %d bytes > cap %d (%d items not uploaded). The store is probably "
                        "unreachable; recording continues and will fill the disk — fix uploads or add space.",
                        self.root, total, self.max_bytes, len(self.pending()))
        self._over_cap_warned = over
        return over

    # -- crash recovery -------------------------------------------------------------------------------------
    def recover(self) -> list[SegmentInfo]:
        """Close and hash segments left behind by a crashed recorder (cameras whose lock is free only)."""
        out: list[SegmentInfo] = []
        with self._lock:
            opens, hashed, _, _ = self._states()
            for cam_dir in sorted(p for p in self.root.iterdir() if p.is_dir()):
                camera = cam_dir.name
                with self._flock(cam_dir / ".recording.lock", blocking=False) as got:
                    if not got:
                        continue  # a live recorder owns it
                    for path in sorted(cam_dir.glob("*.ts")):
                        iid = f"{camera}/{path.name}"
                        if iid in hashed:
                            continue
                        out.append(self._recover_one(camera, path, opens.get(iid)))
        return out

    def _recover_one(self, camera: str, path: Path, open_rec: dict | None) -> SegmentInfo:
        meta = open_rec or {}
        listed = None
        if meta.get("list_path"):
            listed = next((e for e in SegmentListReader(Path(meta["list_path"])).read_new() if e.name == path.name),
                          None)
        partial = listed is None
        self.record_closed(camera, path, partial=partial)
        digest, size = sha256_file(path)
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        start = datetime.fromisoformat(meta["start"]) if meta.get("start") else mtime
        seg = SegmentInfo(
            path=path, camera=camera, index=int(meta.get("index", -1)), connection=int(meta.get("connection", -1)),
            start=start, end=max(mtime, start), stream_start=listed.start if listed else meta.get("stream_start"),
            stream_end=listed.end if listed else None, size=size, sha256=digest, partial=partial,
            ffmpeg_version=meta.get("ffmpeg_version", ""), command=tuple(meta.get("command", ())),
        )
        self.record_hashed(seg, recovered=True)
        log.warning("spool: recovered %s after a crash (partial=%s, %d bytes)", seg.item_id, partial, size)
        return seg

    # -- upload ---------------------------------------------------------------------------------------------
    def drain(self, uploader: Callable[[SpoolItem], UploadReceipt], *, verify: bool = True,
              limit: int | None = None) -> DrainResult:
        """Upload pending items in order; stop at the first failure and leave the rest for the next call."""
        result = DrainResult()
        with self._flock(self.root / ".drain.lock", blocking=False) as got:
            if not got:
                result.busy = True
                result.pending = len(self.pending())
                return result
            result.recovered = self.recover()
            items = self.pending()
            for n, item in enumerate(items):
                if limit is not None and n >= limit:
                    break
                try:
                    if verify:
                        digest, _ = sha256_file(item.path)
                        if digest != item.sha256:
                            raise SpoolIntegrityError(
                                f"{item.path} changed since first contact (journal {item.sha256}, now {digest}); "
                                "quarantine it and investigate — it will not be uploaded")
                    receipt = uploader(item)
                except SpoolIntegrityError:
                    raise
                except Exception as exc:  # noqa: BLE001 - any uploader failure means "retry later"
                    result.error = f"{type(exc).__name__}: {exc}"
                    log.warning("spool: upload of %s failed, will retry: %s", item.item_id, result.error)
                    break
                if receipt.item_id != item.item_id:
                    raise SpoolError(f"uploader returned a receipt for {receipt.item_id!r}, expected {item.item_id!r}")
                self.record_uploaded(receipt)
                result.uploaded.append(receipt)
                if self.prune_uploaded:
                    item.path.unlink(missing_ok=True)
            result.pending = len(self.pending())
        return result
