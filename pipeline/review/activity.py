"""Activity index: how much each frame differs from the one before, computed once per footage original.

Scores come from the frames core's own scene pass (`pipeline.frames.decode.scene_chunk`): every frame
decoded by libavcodec and scaled to 64x36 grey, the score is the mean absolute difference from the
previous frame (0-255). GOP-aligned ranges run on threads side by side, and the seam between two
ranges is re-scored from their edge frames, so the result does not depend on how it was split. The
index is a small JSON document stored as a derived object with its custody event; the timeline
draws it per second and "next activity" jumps to the next span above the threshold.
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


def frame_scores(path: Path, workers: int | None = None) -> tuple[np.ndarray, np.ndarray, Any, list[str]]:
    """(pts, scores, probe info, warnings); scores[0] is 0 (nothing before the first frame)."""
    from pipeline.frames.decode import SceneTask, Source, scene_chunk
    from pipeline.frames.plan import plan_scene_ranges
    from pipeline.frames.probe import probe

    info = probe(path)
    src = Source(info.path, info.stream_index, info.codec, info.reorder_depth)
    ranges = plan_scene_ranges(info.frame_pts, info.key_pts)
    tasks = [SceneTask(source=src, chunk_id=r.id, seek_pts=r.seek_pts, lo=r.lo, hi=r.hi, expected=r.expected)
             for r in ranges]
    with ThreadPoolExecutor(min(workers or _workers(), len(tasks)) or 1, thread_name_prefix="activity") as pool:
        outs = {o.chunk_id: o for o in pool.map(scene_chunk, tasks)}
    warnings: list[str] = []
    all_pts, all_diffs = [], []
    prev_last = None
    for t in tasks:
        o = outs[t.chunk_id]
        if t.lo is not None and (len(o.pts) == 0 or int(o.pts[0]) != t.lo) and t.seek_pts is not None:
            o = scene_chunk(SceneTask(source=src, chunk_id=t.chunk_id, seek_pts=None, lo=t.lo, hi=t.hi,
                                      expected=t.expected))  # the seek overshot: this range from the start
        warnings += o.problems[:3]
        if len(o.pts) < t.expected:
            warnings.append(f"activity: range {t.chunk_id} decoded {len(o.pts)} of {t.expected} frames")
        d = o.diffs.copy()
        if len(d) and prev_last is not None and o.first is not None:
            d[0] = float(np.abs(o.first - prev_last).mean())
        prev_last = o.last if o.last is not None else prev_last
        all_pts.append(o.pts)
        all_diffs.append(d)
    pts = np.concatenate(all_pts) if all_pts else np.zeros(0, np.int64)
    scores = np.nan_to_num(np.concatenate(all_diffs), nan=0.0) if all_diffs else np.zeros(0)
    return pts, scores, info, warnings


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
    pts, scores, info, warnings = frame_scores(path, workers)
    first = int(pts[0]) if len(pts) else 0
    offsets = (pts - first).astype(np.float64) * float(info.time_base)
    threshold, active = spans(offsets, scores, params)
    return {"schema": SCHEMA, "source": source, "metric": METRIC, "params": params.as_dict(),
            "time_base": f"{info.time_base.numerator}/{info.time_base.denominator}", "first_pts": first,
            "frames": int(len(pts)), "threshold": round(threshold, 3), "spans": active,
            "bin_seconds": params.bin_seconds, "bins": bins(offsets, scores, params.bin_seconds),
            "frame_pts": [int(p) for p in pts], "frame_scores": [round(float(s), 2) for s in scores],
            "warnings": warnings, "codec": info.codec, "width": info.width, "height": info.height}


def tools() -> dict[str, str]:
    from pipeline.frames import tool_versions

    return {k: v for k, v in tool_versions().items() if k in ("ffmpeg", "pyav", "libavcodec", "libswscale",
                                                              "numpy", "custody.frames")}
