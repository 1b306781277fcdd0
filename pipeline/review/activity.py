"""Activity index: where in a file something changes, computed once per footage original, cheaply.

Inter-coded footage (H.264, H.265, MPEG-4 with P/B-frames) is scored in the compressed domain: a predicted
frame's coded size is how many bits the encoder needed to describe what changed since the frames it refers
to, so the index reads each packet's size (no decoding) in millibits per pixel. An intra picture's size
says how complex the picture is, not how much changed, so a keyframe takes the larger score of its
neighbouring predicted frames, and every keyframe is also decoded (only those, through libavcodec) to
64x36 grey and compared with the previous keyframe: a cut the encoder placed on a keyframe still shows.
All-intra footage (MJPEG, every frame a keyframe) is scored by the frames core's scene pass instead:
every frame decoded to 64x36 grey, the mean absolute difference from the previous one (0-255), GOP-aligned
ranges on threads with their seams re-scored. Both are deterministic; `metric` in the stored index says
which was used. The index is a small JSON document stored as a derived object with its custody event;
the timeline draws it per second and "next activity" jumps to the next span above the threshold.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ACTION = "activity_indexed"
KIND = "activity_index"
SCHEMA = "custody.activity/1"
METRIC = "mean absolute difference of consecutive frames, 64x36 grey (swscale area), 0-255"
CODED_METRIC = ("coded size of each predicted frame in millibits per pixel; keyframes: the larger of their "
                "neighbours, raised where the keyframe's 64x36 grey picture differs from the previous keyframe's "
                "(mean absolute difference above max(2, 3 x the file's median), scaled onto the threshold)")


@dataclass(frozen=True)
class ActivityParams:
    """What counts as activity: a score above max(`min_score`, `median_factor` x the file's median score)."""

    min_score: float = 2.0
    median_factor: float = 3.0
    merge_seconds: float = 1.0  # active frames closer than this form one span
    bin_seconds: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def frame_scores(path: Path, workers: int | None = None,
                 params: ActivityParams | None = None) -> tuple[np.ndarray, np.ndarray, Any, list[str], str]:
    """(pts, scores, probe info, warnings, metric): coded sizes for inter-coded footage, else every frame decoded."""
    from pipeline.frames.probe import probe

    info = probe(path)
    if len(info.frame_pts) and len(info.key_pts) < len(info.frame_pts):
        pts, scores, warnings = coded_scores(path, info, params or ActivityParams())
        return pts, scores, info, warnings, CODED_METRIC
    pts, scores, info, warnings = decoded_scores(path, workers)
    return pts, scores, info, warnings, METRIC


def _sizes_and_keyframe_changes(path: Path, stream_index: int) -> tuple[dict[int, int], dict[int, float], list[str]]:
    """One demux pass: each shown frame's coded size by pts (from the container), and each keyframe's mean
    absolute difference from the previous keyframe at 64x36 grey (the decoder skips every other frame)."""
    import av
    import av.logging

    from pipeline.frames.pixels import Scaler
    from pipeline.frames.probe import clean_log_line, presentation_ts

    small = Scaler("gray", "AREA")
    sizes: dict[int, int] = {}
    changes: dict[int, float] = {}
    prev: np.ndarray | None = None
    with av.logging.Capture(local=True) as logs, av.open(str(path)) as c:
        stream = c.streams[stream_index]
        stream.codec_context.skip_frame = "NONKEY"
        for pkt in c.demux(stream):
            p = presentation_ts(pkt)
            if p is not None and pkt.size and not pkt.is_discard:
                sizes[p] = sizes.get(p, 0) + int(pkt.size)
            for fr in pkt.decode():
                fp = presentation_ts(fr)
                if fp is None:
                    continue
                cur = small(fr, 64, 36).astype(np.int16)
                changes[fp] = float(np.abs(cur - prev).mean()) if prev is not None else 0.0
                prev = cur
    problems = sorted({clean_log_line(str(m)) for _lvl, _name, m in logs if m})[:3]
    return sizes, changes, [f"activity: {m}" for m in problems]


def coded_scores(path: Path, info: Any, params: ActivityParams) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per-frame scores of inter-coded footage from packet sizes and keyframe pictures (see module doc)."""
    pts = info.frame_pts
    sizes, changes, warnings = _sizes_and_keyframe_changes(path, info.stream_index)
    pixels = max(1, int(info.width) * int(info.height))
    raw = np.array([sizes.get(int(p), 0) for p in pts], np.float64) * 8000.0 / pixels
    is_key = np.isin(pts, info.key_pts)
    scores = raw.copy()
    n = len(pts)
    for i in np.flatnonzero(is_key):
        near = [raw[j] for j in (i - 1, i + 1) if 0 <= j < n and not is_key[j]]
        scores[i] = max(near) if near else 0.0
    key_mads = [changes[int(p)] for p in pts[is_key] if int(p) in changes][1:]
    if key_mads:
        key_threshold = max(2.0, params.median_factor * float(np.median(key_mads)))
        threshold = max(params.min_score, params.median_factor * float(np.median(scores)))
        for i in np.flatnonzero(is_key):
            mad = changes.get(int(pts[i]), 0.0)
            if mad > key_threshold:
                scores[i] = max(scores[i], threshold * mad / key_threshold)
    missing = int(np.count_nonzero([int(p) not in sizes for p in pts]))
    if missing:
        warnings.append(f"activity: {missing} frames had no packet size; scored 0")
    return pts, scores, warnings


def decoded_scores(path: Path, workers: int | None = None) -> tuple[np.ndarray, np.ndarray, Any, list[str]]:
    """(pts, scores, probe info, warnings) from every frame decoded; scores[0] is 0 (nothing before it)."""
    from pipeline.frames.decode import SceneTask, scene_chunk, stitch_scenes
    from pipeline.frames.demux import Source
    from pipeline.frames.plan import plan_scene_ranges
    from pipeline.frames.probe import probe

    info = probe(path)
    src = Source.of(info)
    ranges = plan_scene_ranges(info.frame_pts, info.key_pts)
    tasks = [SceneTask(source=src, chunk_id=r.id, seek_pts=r.seek_pts, lo=r.lo, hi=r.hi, expected=r.expected)
             for r in ranges]
    with ThreadPoolExecutor(min(workers or _workers(), len(tasks)) or 1, thread_name_prefix="activity") as pool:
        outs = {o.chunk_id: o for o in pool.map(scene_chunk, tasks)}
    pts, diffs, warnings = stitch_scenes(tasks, outs, "activity")
    return pts, np.nan_to_num(diffs, nan=0.0), info, warnings


def spans(offsets: np.ndarray, scores: np.ndarray, params: ActivityParams) -> tuple[float, list[list[float]]]:
    """(threshold, [[start, end, peak], ...]) in seconds from the first frame (pure)."""
    if len(scores) == 0:
        return params.min_score, []
    threshold = max(params.min_score, params.median_factor * float(np.median(scores)))
    out: list[list[float]] = []
    step = float(np.median(np.diff(offsets))) if len(offsets) > 1 else 0.04
    for t, s in zip(offsets.tolist(), scores.tolist(), strict=True):
        if s <= threshold:
            continue
        if out and t - out[-1][1] <= params.merge_seconds:
            out[-1][1] = t + step
            out[-1][2] = max(out[-1][2], s)
        else:
            out.append([t, t + step, s])
    return threshold, [[round(a, 6), round(b, 6), round(c, 2)] for a, b, c in out]


def bins(offsets: np.ndarray, scores: np.ndarray, bin_seconds: float) -> list[float]:
    """The highest score in each `bin_seconds` of the file (what the timeline draws)."""
    if len(scores) == 0:
        return []
    idx = (offsets // bin_seconds).astype(np.int64)
    out = np.zeros(int(idx.max()) + 1)
    np.maximum.at(out, idx, scores)
    return [round(float(x), 2) for x in out]


def index_document(path: Path, source: dict[str, Any], params: ActivityParams | None = None,
                   workers: int | None = None) -> dict[str, Any]:
    """The activity index of one file, as stored (frame pts and scores too, for frame-exact lookups)."""
    params = params or ActivityParams()
    pts, scores, info, warnings, metric = frame_scores(path, workers, params)
    first = int(pts[0]) if len(pts) else 0
    offsets = (pts - first).astype(np.float64) * float(info.time_base)
    threshold, active = spans(offsets, scores, params)
    return {"schema": SCHEMA, "source": source, "metric": metric, "params": params.as_dict(),
            "time_base": f"{info.time_base.numerator}/{info.time_base.denominator}", "first_pts": first,
            "frames": int(len(pts)), "threshold": round(threshold, 3), "spans": active,
            "bin_seconds": params.bin_seconds, "bins": bins(offsets, scores, params.bin_seconds),
            "frame_pts": [int(p) for p in pts], "frame_scores": [round(float(s), 2) for s in scores],
            "warnings": info.damage_warnings() + warnings, "codec": info.codec, "width": info.width,
            "height": info.height,
            # the probe's finding of damaged coded data: the timeline shows it once the footage is prepared
            "damaged_packets": info.damaged_packets, "damaged_spans": info.damaged_spans()}


def tools() -> dict[str, str]:
    from pipeline.frames import tool_versions

    return {k: v for k, v in tool_versions().items() if k in ("ffmpeg", "pyav", "libavcodec", "libswscale",
                                                              "numpy", "custody.frames")}
