"""extract_frames: probe, plan, decode GOP-aligned chunks in parallel, assemble a reproducible result.

Pipeline: probe + packet listing -> tail check (where does decoding really stop?) -> optional scene pass
(every frame, 64x36 grey) -> pure plan of wanted pts -> chunks -> PNG + thumbnail per still -> contact sheets.
Output bytes depend only on the input and the parameters, never on worker count or backend.
"""

from __future__ import annotations

import dataclasses
import functools
import platform
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.frames import plan as planmod
from pipeline.frames.bitstream import spread
from pipeline.frames.contact_sheet import build_contact_sheets
from pipeline.frames.decode import (
    ChunkSpec,
    DecodeOut,
    DecodeTask,
    SceneOut,
    SceneTask,
    decode_batch,
    run_task,
    scene_chunk,
    stitch_scenes,
)
from pipeline.frames.demux import Source
from pipeline.frames.errors import BadParamsError
from pipeline.frames.executor import (
    BASE_MB,
    DEFAULT_MEMORY_MB,
    ChunkExecutor,
    decoder_mb,
    default_workers,
    open_executor,
)
from pipeline.frames.models import ExtractionResult, ExtractParams, Still
from pipeline.frames.modes import MODES, active, keyframe_min_interval
from pipeline.frames.png import THUMB_JPEG_QUALITY, encoder_versions, png_settings
from pipeline.frames.probe import VideoInfo, probe
from pipeline.frames.stills import StillOut, encode_slots, spill

# 2: in-process libavcodec decoding (PyAV) instead of an ffmpeg process per chunk
# 3: rotation read from each still's own frame (display matrix), not once from the first keyframe
# 4: PNG by our encoder (UP filter + libdeflate level 2) instead of OpenCV level 0; keyframe mode takes at most
#    one still per `keyframe_min_interval` (default 1 s on all-intra footage); wall-clock time in still names
# 5: PNG by fpng by default (libdeflate too for flat pictures, the smaller kept); `png_encoder` in the parameters
# 6: HEVC skips unreferenced pictures it does not keep when all sit in the top temporal sub-layer (same bytes)
# 7: frames the decoder flags corrupt (errors concealed) are marked per still and warned about, and make the
#    file incomplete when they are in the final GOP (CABAC streams log nothing for such damage)
# 8: H.264/H.265 packets whose NAL syntax is broken (zeroed bytes the decoder takes silently) are found in the
#    probe; stills decoded from them are marked `bitstream_damaged`, and such damage in the final GOP makes the
#    file incomplete; a frame predicted from one the decoder concealed errors in is `decoder_concealed` too
# 9: zeros ending a length-prefixed unit (fewer than 32: what a remux of Annex B footage leaves) and start codes
#    inside one are read as libavcodec reads them, not taken for damage (engine 8 flagged every still of such a
#    remux)
# 10: H.264 intra refresh: a keyframe that is a P picture with a recovery point is decoded from a keyframe whose
#     refresh is complete, and damage before it spreads until its refresh completes (refresh.py)
# 11: a still lists at most REQUESTS_LISTED requested times (modes.py): an interval shorter than a frame no
#     longer walks every request (engine 10 took 9.5 s to plan `--every 0.0001s` on a minute, and never ended on
#     `--every 0.0000000001s`)
ENGINE_VERSION = "11"
TAIL_ID = -1
#: called with each still once its PNG and thumbnail are written (from worker threads: must be thread-safe)
OnStill = Callable[[StillOut], None]


def tool_versions() -> dict[str, str]:
    """Versions that determine output bytes; record them with every extraction."""
    import av
    import cv2

    libs = {f"{k}": ".".join(map(str, v)) for k, v in av.library_versions.items()
            if k in ("libavcodec", "libavformat", "libswscale")}
    return {"opencv": cv2.__version__, "ffmpeg": av.ffmpeg_version_info, "pyav": av.__version__, **libs,
            "numpy": np.__version__, "python": platform.python_version(), **encoder_versions(),
            "custody.frames": ENGINE_VERSION}


def engine_params(params: ExtractParams, info: VideoInfo | None = None,
                  wallclock_start: datetime | None = None) -> dict[str, Any]:
    """The user parameters plus every pinned engine knob, so the run can be reproduced exactly."""
    extra: dict[str, Any] = {}
    if info is not None and params.keyframes:
        gap = keyframe_min_interval(params.keyframe_min_interval, len(info.key_pts), len(info.frame_pts))
        extra["keyframe_min_interval_applied"] = float(gap)
    if wallclock_start is not None:
        extra["wallclock_start"] = _utc(wallclock_start).isoformat().replace("+00:00", "Z")
    return {**params.model_dump(mode="json"), **extra,
            "png_encoder": png_settings(params.png_compression, params.png_encoder),
            "still_name": "{name_prefix}[_{wall-clock UTC YYYYMMDDTHHMMSS.mmmZ}]_t{offset:010.3f}[_f{frame index}]",
            "thumb": {"format": "jpeg", "quality": THUMB_JPEG_QUALITY, "width": params.thumb_width,
                      "scaler": "swscale area, from the decoded frame"},
            "decode": {"library": "libavcodec via PyAV", "decoder_threads": 1, "pix_fmt": "bgr24 (swscale, 1 thread)",
                       "autorotate": False, "rotation": "per frame, from its display matrix",
                       "frame_select": "exact pts",
                       "seek": "keyframe, then decoder flush; H.264 intra refresh: a keyframe whose refresh (recovery "
                               "point) is complete before the first frame kept",
                       "skip_unreferenced": "h264 (nal_ref_idc 0); hevc sub-layer non-reference pictures when "
                                            "every one is in the top temporal sub-layer; not kept frames only",
                       **({"skip_unreferenced_applied": info.skip_unreferenced} if info is not None else {}),
                       "keyframe_only": "wanted keyframes only"},
            "scene_metric": "mean abs diff, 64x36 grey (swscale area)", "interval_rule": "last frame with pts <= t",
            "engine_version": ENGINE_VERSION}


def _tail_spec(info: VideoInfo, seek_from_start: bool = False) -> ChunkSpec:
    """Decode the last GOP to learn the last pts that really decodes (where a truncated file stops)."""
    seek = None if seek_from_start else info.seek_key(int(info.frame_pts[-1]))
    return ChunkSpec(chunk_id=TAIL_ID, seek_pts=seek, wanted=(), keys_only=False, to_eof=True,
                     packets_to_eof=_packets_from(info, seek))


def _packets_from(info: VideoInfo, seek_pts: int | None) -> int:
    return len(info.frame_pts) - (int(np.searchsorted(info.frame_pts, seek_pts)) if seek_pts is not None else 0)


def _scene_pass(ex: ChunkExecutor, src: Source, info: VideoInfo, threshold: float) -> tuple[tuple[int, ...], list[str]]:
    ranges = planmod.plan_scene_ranges(info.frame_pts, info.key_pts)
    tasks = [SceneTask(source=src, chunk_id=r.id, seek_pts=r.seek_pts, lo=r.lo, hi=r.hi, expected=r.expected)
             for r in ranges]
    outs: dict[int, SceneOut] = {o.chunk_id: o for o in ex.map_unordered(scene_chunk, tasks)}
    pts, diffs, warnings = stitch_scenes(tasks, outs, "scene pass")
    if not len(pts):
        return (), warnings
    return planmod.scene_cuts(pts, diffs, threshold), warnings


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def wallclock_label(t: datetime) -> str:
    """Portable UTC stamp for file names, to the millisecond (truncated): 20260102T030405.123Z."""
    t = _utc(t)
    return f"{t:%Y%m%dT%H%M%S}.{t.microsecond // 1000:03d}Z"


def _stems(wanted: dict[int, planmod.Wanted], info: VideoInfo, prefix: str,
           wallclock_start: datetime | None = None) -> dict[int, str]:
    """File stems: unique within one source; the prefix (exhibit and source id) makes them unique across the
    sources of an exhibit, and the wall-clock time, when known, says when each still was recorded."""
    stems: dict[int, str] = {}
    used: set[str] = set()
    for p in sorted(wanted):
        off = info.offset_of(p)
        wall = f"_{wallclock_label(wallclock_start + timedelta(seconds=off))}" if wallclock_start else ""
        stem = f"{prefix}{wall}_t{off:010.3f}"
        if stem in used:
            stem = f"{stem}_f{wanted[p].index:07d}"
        used.add(stem)
        stems[p] = stem
    return stems


def extract_frames(source: Path, out_dir: Path, params: ExtractParams, *, workers: int | None = None,
                   progress: Callable[[int, int], None] | None = None, wallclock_start: datetime | None = None,
                   dask: Any = None, processes: bool = False, memory_mb: int = DEFAULT_MEMORY_MB,
                   on_still: OnStill | None = None) -> ExtractionResult:
    """Extract the stills `params` asks for from `source` into `out_dir` (PNGs, thumbs/, contact sheets).

    `source` is only read. `workers` chunks run at once (default: one per core, as many as fit in
    `memory_mb` for this frame size), in threads driving libavcodec decoders (`processes=True` for a
    process pool); `dask` (a distributed.Client or scheduler address) runs
    chunks on a cluster instead. Output is byte-identical whichever is used. `progress(done, total)` is called
    with still counts. `on_still(still)` is called once per still of the result as soon as its files are
    written (from worker threads; it may block to slow extraction down, and what it raises aborts it): a
    still is handed over once no retry can replace it. Truncated input never raises: `complete`,
    `decode_stopped_at` and `warnings` say what happened. Raises NotVideoError / ExtractionError / BadParamsError.
    """
    if not params.wants_anything():
        raise BadParamsError(f"nothing to extract: set one of {', '.join(m.field for m in MODES.values())}")
    source, out_dir = Path(source), Path(out_dir)
    info = probe(source)
    n_workers = max(1, workers or default_workers(info.width, info.height, memory_mb))
    # what the decoders leave of the budget goes to stills being encoded, shared between the decoders
    spare = memory_mb - BASE_MB - n_workers * decoder_mb(info.width, info.height)
    per_decoder = max(1, encode_slots(info.width, info.height, spare) // n_workers)
    base = dict(source=str(source), out_dir=str(out_dir), params=engine_params(params, info, wallclock_start),
                tool_versions=tool_versions())
    if info.moov_missing:
        return ExtractionResult(**base, stills=[], contact_sheets=[], frames_in_index=0, frames_readable=0,
                                duration=0.0, complete=False, decode_stopped_at=None, warnings=list(info.warnings),
                                probe=info.summary())
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "thumbs").mkdir(exist_ok=True)
    src = Source.of(info)
    warnings = list(info.warnings) + info.damage_warnings() + [w for w in [info.deeper_than_stills()] if w]
    with open_executor(n_workers, dask, processes) as ex:
        cuts: tuple[int, ...] = ()
        if any(m.needs_scene_pass for m, _ in active(params)):
            cuts, sw = _scene_pass(ex, src, info, params.scene_threshold)
            warnings += sw
        wanted, pw = planmod.plan_wanted(info.frame_pts, info.key_pts, info.time_base, scene_cuts=cuts,
                                         params=params)
        warnings += pw
        stems = _stems(wanted, info, params.name_prefix, wallclock_start)
        chunks = planmod.plan_chunks(list(wanted), info.frame_pts, info.key_pts, refresh=bool(info.refresh_points))

        # threads in this process hand each PNG to `on_still` in memory rather than through a work file
        in_memory = on_still is not None and dask is None and not processes

        def batch(items: list[ChunkSpec]) -> DecodeTask:
            return DecodeTask(source=src, chunks=tuple(items), out_dir=str(out_dir), png_level=params.png_compression,
                              png_encoder=params.png_encoder, thumb_width=params.thumb_width,
                              liveness_only=not any(c.wanted for c in items), encode_slots=per_decoder,
                              in_memory=in_memory)

        last_gop = planmod.gop_of(info.key_pts, int(info.frame_pts[-1]))
        specs = [ChunkSpec(chunk_id=c.id, seek_pts=c.seek_pts, wanted=tuple((p, stems[p]) for p in c.wanted),
                           keys_only=c.keys_only) for c in chunks]
        if info.refresh_points:  # gradual refresh: decode from a keyframe whose refresh is complete (refresh.py)
            specs = [dataclasses.replace(s, seek_pts=info.seek_key(s.wanted[0][0]), keys_only=False) for s in specs]
        # The chunk that already decodes into the last GOP doubles as the truncation check; otherwise a
        # separate run decodes the last GOP.
        if chunks and not chunks[-1].keys_only and planmod.gop_of(info.key_pts, chunks[-1].wanted[-1]) == last_gop:
            specs[-1] = dataclasses.replace(specs[-1], to_eof=True,
                                            packets_to_eof=_packets_from(info, specs[-1].seek_pts))
            tail_id = chunks[-1].id
            tail_batch: list[DecodeTask] = []
        else:
            tail_id = TAIL_ID
            tail_batch = [batch([_tail_spec(info)])]  # first in the queue: a whole GOP, not the long pole at the end

        outs: dict[int, DecodeOut] = {}
        done, total = 0, len(wanted)
        batches = [batch(specs[a:b]) for a, b in planmod.plan_batches(len(specs), ex.slots)]
        # the batch that decodes to the end of the file is the longest: start it first, not last
        batches.sort(key=lambda t: not any(c.to_eof for c in t.chunks))
        tasks = tail_batch + batches
        handed = _Handover(on_still, out_dir)
        # threads report each chunk as it finishes; process pools and Dask when their batch comes back
        fn = functools.partial(run_task, on_chunk=handed.chunk) if dask is None and not processes else run_task
        for batch_out in ex.map_unordered(fn, tasks):
            for o in batch_out:
                outs[o.chunk_id] = o
                done += len(o.stills) + len(o.missing)
                handed.chunk(o)
            if progress:
                progress(done, total)
    tail = outs.pop(TAIL_ID, None) or outs[tail_id]
    if tail.last_pts is None and _tail_spec(info).seek_pts is not None:  # the seek failed: from the start
        tail = decode_batch(batch([_tail_spec(info, seek_from_start=True)]))[0]
    last_ok = tail.last_pts
    tail_problems = tail.problems
    warnings += [f"decoder: {p}" for p in tail_problems[:5]]
    last_readable = int(info.frame_pts[-1])
    tail_errors = [p for p in tail_problems if "[error]" in p or "corrupt" in p]
    tail_damaged = sorted(p for p in info.damaged_pts if planmod.gop_of(info.key_pts, p) == last_gop)
    complete = (info.frames_in_index <= len(info.frame_pts) and last_ok == last_readable and not tail_errors
                and not tail.concealed and not tail_damaged)
    if tail_errors:
        warnings.append("decoder errors in the final GOP (typical of a file cut off mid-write); the last frames "
                        "may be damaged")
    if tail.concealed:
        warnings.append(f"the decoder concealed errors in {len(set(tail.concealed))} frame(s) of the final GOP "
                        f"(first at {info.offset_of(min(tail.concealed)):.3f}s): the end of the file is damaged")
    if tail_damaged:
        warnings.append(f"{len(tail_damaged)} picture(s) of the final GOP (first at "
                        f"{info.offset_of(tail_damaged[0]):.3f}s) are decoded from damaged coded data: the end of the "
                        "file is damaged")
    if info.frames_in_index > len(info.frame_pts):
        warnings.append(f"container index lists {info.frames_in_index} frames but only {len(info.frame_pts)} are "
                        "present: the file is truncated")
    if last_ok != last_readable:
        warnings.append("decoding stops before the last readable packet"
                        + (f" (last good frame at {info.offset_of(last_ok):.3f}s)" if last_ok is not None else ""))

    # A frame that should decode (pts <= last good frame) but did not means the seek landed late: retry from
    # an earlier keyframe, then sequentially from the start. Rare; keeps seeking verified rather than trusted.
    for c, spec in zip(chunks, specs, strict=True):
        o = outs[c.id]
        should = [p for p in o.missing if last_ok is not None and p <= last_ok]
        if not should or spec.seek_pts is None:
            continue
        g = planmod.gop_of(info.key_pts, spec.seek_pts)
        for seek in ([int(info.key_pts[g - 1])] if g >= 1 else []) + [None]:
            # decoding every frame, not only keyframes: a non-IDR keyframe after a gap in frame numbers (open
            # GOP) may not come out of a decoder that saw only keyframes
            retry = decode_batch(batch([dataclasses.replace(spec, seek_pts=seek, to_eof=False, keys_only=False)]))[0]
            if len(retry.missing) < len(o.missing):
                o = retry
            if not [p for p in o.missing if p <= last_ok]:
                break
        outs[c.id] = o
    for c in chunks:  # chunks held back for a possible retry are final now
        handed.chunk(outs[c.id], final=True)

    stills: list[Still] = []
    tb = f"{info.time_base.numerator}/{info.time_base.denominator}"
    # a frame the decoder patched up passes its errors on to the frames predicted from it, up to the next keyframe
    own = set(tail.concealed).union(*(outs[c.id].concealed for c in chunks))
    concealed = spread(own, info.decode_order, info.key_pts, {k: n for k, n, _ in info.refresh_points})
    for c in chunks:
        o = outs[c.id]
        warnings += [f"decoder: {p}" for p in o.problems[:3]]
        for p in o.missing:
            complete = False
            warnings.append(f"frame at {info.offset_of(p):.3f}s (pts {p}) did not decode; no still written")
        for s in o.stills:
            w = wanted[s.pts]
            off = info.offset_of(s.pts)
            stills.append(Still(index=w.index, pts=s.pts, time_base=tb, pts_time=info.pts_time(s.pts), offset=off,
                                reasons=sorted(w.reasons), requested_times=sorted(w.requested), width=s.width,
                                height=s.height, rotation=s.rotation, pixel_sha256=s.pixel_sha256, png=s.png,
                                png_sha256=s.png_sha256, png_size=s.png_size, thumb=s.thumb,
                                wallclock=wallclock_start + timedelta(seconds=off) if wallclock_start else None,
                                decoder_concealed=s.pts in concealed, bitstream_damaged=s.pts in info.damaged_pts,
                                interlaced=s.interlaced))
    stills.sort(key=lambda s: s.pts)
    warnings += _concealed_warnings(stills, own, set(tail.concealed), info)
    woven = sum(s.interlaced for s in stills)
    if woven:
        apart = f"1/{2 * info.avg_fps:g} s" if info.avg_fps > 0 else "half a frame"
        warnings.append(f"{woven} of {len(stills)} stills are interlaced frames: two fields recorded {apart} apart, "
                        "kept woven as coded (not deinterlaced, which would change pixels), so moving edges show "
                        "combing")
    sheets = build_contact_sheets(out_dir, params.name_prefix, [(out_dir / s.thumb, s.offset) for s in stills],
                                  columns=params.contact_sheet_columns, rows=params.contact_sheet_rows,
                                  png_level=params.png_compression, png_encoder=params.png_encoder
                                  ) if stills else []
    duration = info.offset_of(last_readable) + float(planmod.typical_frame_duration(info.frame_pts) * info.time_base)
    return ExtractionResult(**base, stills=stills, contact_sheets=sheets, frames_in_index=info.frames_in_index,
                            frames_readable=len(info.frame_pts), duration=duration, complete=complete,
                            decode_stopped_at=info.offset_of(last_ok) if last_ok is not None else None,
                            warnings=_dedupe(warnings), chunks=len(chunks),
                            # with the damage decoding found too (for the timeline), and the rotation, which comes
                            # with each decoded frame (the probe does not decode one for it)
                            probe={**info.summary(frozenset(concealed)),
                                   "rotation": stills[0].rotation if stills else None})


class _Handover:
    """Hands each chunk's stills to `on_still` exactly once, and only when no retry can replace them: a chunk
    with frames missing may be decoded again from an earlier keyframe, so it waits until the retries are done.

    A PNG that came in memory (`StillOut.data`) is let go once handed over, and written to its file if its
    chunk is held back, so memory holds only what is being handed over and the result keeps no pixels."""

    def __init__(self, on_still: OnStill | None, out_dir: Path) -> None:
        self.on_still = on_still
        self.out_dir = out_dir
        self.done: set[int] = set()
        self.lock = threading.Lock()

    def chunk(self, out: DecodeOut, final: bool = False) -> None:
        if self.on_still is None or out.chunk_id == TAIL_ID or (out.missing and not final):
            with self.lock:  # the worker and the collecting loop both report a chunk
                for still in out.stills:
                    spill(still, self.out_dir)
            return
        with self.lock:
            if out.chunk_id in self.done:
                return
            self.done.add(out.chunk_id)
        for still in out.stills:
            self.on_still(still)
            still.data = None


def _concealed_warnings(stills: list[Still], own: set[int], tail: set[int], info: VideoInfo) -> list[str]:
    """Say which stills show frames the decoder had to patch up (or frames predicted from one), and where else
    decoding met damage: such a still is partly the decoder's guess, which an examiner must know before relying
    on it. `own`: the frames the decoder flagged; `tail`: those of the final GOP, warned about with the file's end."""
    out = [f"still at {s.offset:.3f}s ({s.png}): the decoder concealed errors in this frame (damaged data); "
           "not every pixel is from the recording" for s in stills if s.pts in own]
    out += [f"still at {s.offset:.3f}s ({s.png}): predicted from a frame the decoder concealed errors in (damaged "
            "data); not every pixel is from the recording" for s in stills if s.decoder_concealed and s.pts not in own]
    out += [f"still at {s.offset:.3f}s ({s.png}): decoded from damaged coded data (see the bitstream warning); it "
            "does not show what was recorded" for s in stills if s.bitstream_damaged and not s.decoder_concealed]
    others = sorted(own - tail - {s.pts for s in stills})
    if others:
        out.append(f"the decoder concealed errors in {len(others)} other decoded frame(s), from "
                   f"{info.offset_of(others[0]):.3f}s to {info.offset_of(others[-1]):.3f}s: the footage is damaged "
                   "there (frames not decoded were not checked)")
    return out


def _dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    return [x for x in items if not (x in seen or seen.add(x))]


__all__ = ["extract_frames", "tool_versions", "engine_params", "ExtractParams", "ExtractionResult", "Still"]

