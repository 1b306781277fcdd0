"""Storing an original from a local file or a request body: resumable, classified, deduplicated, recorded.

Both entry points end in `originals.record_original`, so every door makes the
same object and the same events.

Duplicates are recognised within the case only (`dedupe.HashIndex`: a case learns nothing of
another). Local files up to PREHASH_MAX_BYTES are hashed before sending
(cheap, and a duplicate then costs no upload: a `duplicate_linked` event points
at the existing object). An API upload declaring `X-Content-SHA256` of bytes
already held is hashed without being stored and linked the same way (a
mismatch stores nothing: 422). Larger files and streams without a declared hash
are stored first and the duplicate noted afterwards (`details.duplicate_of` on
the `ingested` event), because reading a large file twice would halve
throughput. Either way nothing offered is discarded unrecorded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

from hashing.stream import Digests, hash_file
from pipeline.custody.actor import Actor
from pipeline.custody.catalog import Case, Exhibit
from pipeline.errors import ChainConflict, IntegrityError
from pipeline.evidence import Evidence
from pipeline.intake.dedupe import HashIndex
from pipeline.intake.mediainfo import HEAD_BYTES, MediaReport, content_type_of, inspect_file, inspect_media
from pipeline.intake.originals import (
    Offer,
    UploadResult,
    link_duplicate,
    object_metadata,
    put_original,
    record_original,
)
from pipeline.intake.resumable import RateLimiter, exclusive, journal_dir, journal_id, load_journal, resumable_put

PREHASH_MAX_BYTES = 32 * 1024 * 1024
STALE_TMP_SECONDS = 60
Progress = Callable[[int], None]


def repair_local_state(home: Path) -> list[str]:
    """Remove temporary files an earlier run left when the local disk filled (journals, witnesses).

    Those files are written next to their target and renamed over it; one older than a minute was
    never renamed, so its writer failed. Returns what was done, as warnings for the operator.
    """
    import time

    removed = 0
    cutoff = time.time() - STALE_TMP_SECONDS
    for sub in ("uploads", "witness"):
        d = home / sub
        if not d.is_dir():
            continue
        for p in d.glob("*.tmp"):
            try:
                if p.is_file() and not p.is_symlink() and p.stat().st_mtime < cutoff:
                    p.unlink()
                    removed += 1
            except OSError:
                continue
    return [f"removed {removed} temporary file(s) an earlier run left in {home} (disk full then?)"] if removed else []


def _committed(ev: Evidence, case_ref: str, exhibit_ref: str, make: Callable[[], tuple[Case, Exhibit]],
               warnings: list[str]) -> tuple[Case, Exhibit]:
    """`make()` (the exhibit's record), honest about a local failure (the witness file) once the exhibit is
    recorded in S3: a warning, not a failure."""
    try:
        return make()
    except OSError as exc:
        case = ev.catalog.find_case(case_ref)
        ex = case and ev.catalog.find_exhibit(case, exhibit_ref)
        if not (case and ex and any(e.get("action") == "exhibit_created" for e in ev.log.events(ex.id)[:1])):
            raise
        warnings.append(f"exhibit {ex.ref} recorded, but a local write failed afterwards "
                        f"({exc.strerror or type(exc).__name__}); its local witness catches up at its next event")
        return case, ex


class ExhibitRaceLost(ChainConflict):
    """Another intake created the same exhibit reference while this one was recording it; nothing was stored."""


class ExhibitAhead:
    """The exhibit a local intake adds to, recorded (when new) in the background while the first bytes are sent.

    Recording a new exhibit is ~8 sequential requests (record, index, keys, first event, case log), as long as
    sending 10 MB on loopback; parts of a multipart upload may go meanwhile, since nothing is an object until
    the upload completes. `ready()` waits for the record and must be called before anything is stored or
    recorded under the exhibit; if another intake created the same reference at that moment, it raises
    ExhibitRaceLost and the parts are discarded (abort), so nothing is ever stored under an exhibit id that lost
    (the caller then stores into the winner's exhibit, as if it had found it).
    """

    def __init__(self, ev: Evidence, case_ref: str, exhibit_ref: str, officer: str, actor: Actor,
                 description: str, warnings: list[str]) -> None:
        self.case, self.exhibit, commit = ev.exhibit_ahead(case_ref, exhibit_ref, officer, actor, description)
        self._pending = None if commit is None else _Background(
            _committed, ev, case_ref, exhibit_ref, commit, warnings)

    def ready(self) -> None:
        """Wait until the exhibit is recorded; raise if it could not be, or another intake's won the reference."""
        if self._pending is None:
            return
        _case, ex = self._pending.result()
        if ex.id != self.exhibit.id:
            raise ExhibitRaceLost(f"exhibit {ex.ref} was created by another intake at the same moment; nothing "
                                  "was stored under this one's record")

    def recorded(self) -> tuple[Case, Exhibit]:
        """The case and exhibit as recorded: after ExhibitRaceLost, the winner's (it is a member of the case)."""
        return self._pending.result() if self._pending is not None else (self.case, self.exhibit)

    def settle(self) -> None:
        """Wait for the background record whatever happened (before the command exits), raising nothing."""
        if self._pending is not None:
            self._pending.wait()


def offer(name: str, source: str, parameters: dict[str, Any] | None = None) -> Offer:
    """The usual offer: the submitted name, and which door (`local-file`, `field-upload`, `api-upload`)."""
    return Offer(name, {"source": source, "submitted_name": name, **(parameters or {})})


def store_original(ev: Evidence, case: Case, exhibit: Exhibit, path: Path, offer: Offer, *, actor: Actor,
                   algorithms: tuple[str, ...] = ("sha256",), progress: Progress | None = None,
                   limit_mb_s: float | None = None, expected_sha256: str | None = None,
                   media: MediaReport | None = None, resumable: bool = True,
                   ready: Callable[[], None] | None = None) -> UploadResult:
    """Store one local file as an original (the path every local intake takes).

    `media` skips the probe when the caller already knows what the file is (a camera segment, hashed
    and classified at first contact); `expected_sha256` is a hash taken at first contact, checked
    while sending. Files of a part or more are resumable through a journal unless `resumable=False`.
    `ready` (`ExhibitAhead.ready`) is called before anything is stored or recorded under the exhibit.
    """
    ready = ready or _nothing
    st = path.stat()
    # Classifying (ffprobe, EXIF: a process start, ~0.1-0.3 s) only reads the file's head: do it while the
    # bytes are sent, not before (a fixed cost that made short uploads ~20 % slower than the transfer).
    probing = _Background(inspect_file, path) if media is None else None

    def media_report() -> MediaReport:
        return probing.result() if probing is not None else media  # type: ignore[return-value]

    expected = expected_sha256
    if expected is None and offer.index and st.st_size <= PREHASH_MAX_BYTES:
        expected = hash_file(path).sha256
    if expected and offer.index:
        existing = HashIndex(ev.store).lookup(expected, case.id)
        if existing:
            if progress:
                progress(st.st_size)
            ready()
            return link_duplicate(ev, case, exhibit, existing, offer, media_report(), actor)
    part_size = ev.store.settings.part_size_mb * 1024 * 1024
    if st.st_size < part_size or not resumable or offer.key:
        ready()
        obj = put_original(ev, exhibit, path, offer, expected_sha256=expected, algorithms=algorithms,
                           progress=progress)
        return record_original(ev, case, exhibit, obj, offer, media_report(), actor)
    jdir = journal_dir(ev.settings.home)
    jid = journal_id(path, st, exhibit)
    jpath = jdir / f"{jid}.json"
    with exclusive(jdir / f"{jid}.lock"):
        journal = load_journal(jpath, path, st, ev.store.buckets["originals"], part_size, exhibit)
        meta = object_metadata(exhibit, offer)
        if expected:
            meta["sha256"] = expected
        with open(path, "rb") as f:
            ctype = content_type_of(f.read(HEAD_BYTES))
        headers = ev.store.object_headers(ctype, meta, lock=True)
        try:
            obj, reused = resumable_put(ev.store, journal, path, headers, algorithms=algorithms, progress=progress,
                                        expected_sha256=expected, limiter=RateLimiter(limit_mb_s),
                                        before_complete=ready)
        except ExhibitRaceLost:
            jpath.unlink(missing_ok=True)  # its upload was aborted: nothing to resume
            raise
        result = record_original(ev, case, exhibit, obj, offer, media_report(), actor, reused)
        jpath.unlink(missing_ok=True)
    (jdir / f"{jid}.lock").unlink(missing_ok=True)
    return result


def _nothing() -> None:
    return None


class _Background:
    """Run one call in a daemon thread; `result()` joins it and re-raises what it raised."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self._out: list[Any] = []
        self._err: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(fn, *args), daemon=True, name="intake-background")
        self._thread.start()

    def _run(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self._out.append(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller of result()
            self._err.append(exc)

    def wait(self) -> None:
        self._thread.join()

    def result(self) -> Any:
        self._thread.join()
        if self._err:
            raise self._err[0]
        return self._out[0]


class HeadCapture:
    """File-like pass-through that keeps the first bytes for classification."""

    def __init__(self, raw: BinaryIO, keep: int = HEAD_BYTES) -> None:
        self._raw = raw
        self._keep = keep
        self.head = bytearray()

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data and len(self.head) < self._keep:
            self.head += data[: self._keep - len(self.head)]
        return data


def store_stream(ev: Evidence, case: Case, exhibit: Exhibit, stream: BinaryIO, offer: Offer, *, actor: Actor,
                 expected_sha256: str | None = None, declared_type: str | None = None) -> UploadResult:
    """Store a request body as an original in one hashed pass, then classify it from the stored copy.

    The declared Content-Type is recorded as a claim (`declared_content_type`) but never used: the stored
    type comes from the bytes, like every other door.
    """
    if declared_type:
        offer.parameters = {**offer.parameters, "declared_content_type": declared_type[:100]}
    cap = HeadCapture(stream)
    if expected_sha256 and offer.index:
        existing = HashIndex(ev.store).lookup(expected_sha256, case.id)
        if existing:  # hash the body without storing it: identical bytes are linked, a mismatch refused
            d = Digests(("sha256",))
            while chunk := cap.read(1024 * 1024):
                d.update(chunk)
            if d.sha256 != expected_sha256.lower():
                raise IntegrityError(f"SHA-256 mismatch: declared {expected_sha256.lower()}, received {d.sha256}; "
                                     "nothing was stored — re-send the file")
            media = inspect_media(bytes(cap.head), d.size, _presigned(ev, existing))
            return link_duplicate(ev, case, exhibit, existing, offer, media, actor)
    obj = put_original(ev, exhibit, cap, offer, expected_sha256=expected_sha256)  # type: ignore[arg-type]
    media = inspect_media(bytes(cap.head), obj.size, _presigned(ev, obj.ref()))
    return record_original(ev, case, exhibit, obj, offer, media, actor)


def _presigned(ev: Evidence, ref: dict[str, Any]) -> str:
    return ev.store.presigned_get(ref["bucket"], ref["key"], ref.get("version_id"), timedelta(minutes=15))
