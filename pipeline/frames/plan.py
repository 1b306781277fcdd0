"""Pure planning: which frames each mode needs, and how to cut decoding into GOP-aligned chunks.

No I/O here, so the plan (and therefore every output byte) depends only on the probed timestamps and the
parameters, never on worker count or scheduling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from pipeline.frames.modes import MODES, Footage, frame_at, typical_frame_duration  # noqa: F401 - re-exported

# Merge the next GOP into the current chunk when at most this many unwanted frames sit between them. A seek
# is an index lookup plus a decoder flush, so decoding through unwanted frames rarely pays; merging only
# saves the flush when wanted frames run straight into the next keyframe.
MERGE_GAP_FRAMES = 2
MAX_WANTED_PER_CHUNK = 48
MAX_KEYS_PER_CHUNK = 4
KEY_MERGE_GAP = 3  # keyframe-only chunks demux (never decode) up to this many unwanted keyframes between wanted ones
SCENE_CHUNK_FRAMES = 300
# gradual refresh footage (refresh.py): every chunk decodes a GOP before its first to let the refresh complete,
# so consecutive GOPs share a chunk, up to this many
REFRESH_GOPS_PER_CHUNK = 4
BATCH_SHARE = 2
MAX_CHUNKS_PER_BATCH = 64


@dataclass
class Wanted:
    pts: int
    index: int
    reasons: set[str] = field(default_factory=set)
    requested: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Chunk:
    """One decoder run: seek to `seek_pts` (a keyframe; None = from the start) and emit `wanted` pts."""

    id: int
    seek_pts: int | None
    wanted: tuple[int, ...]
    keys_only: bool


@dataclass(frozen=True)
class RangeChunk:
    """A scene-analysis run over every frame with lo <= pts < hi (None = open end)."""

    id: int
    seek_pts: int | None
    lo: int | None
    hi: int | None
    expected: int


def plan_wanted(frame_pts: np.ndarray, key_pts: np.ndarray, time_base: Fraction, *, scene_cuts: tuple[int, ...] = (),
                params: Any = None, **values: Any) -> tuple[dict[int, Wanted], list[str]]:
    """Map pts -> Wanted for every frame some mode asks for. Times are offsets from the first frame.

    Modes come from the registry (`modes.py`); their values from `params` (an ExtractParams) or keywords
    named like its fields (`every_seconds=3.0, keyframes=True`).
    """
    wanted: dict[int, Wanted] = {}
    warnings: list[str] = []
    if len(frame_pts) == 0:
        return wanted, warnings
    gap = getattr(params, "keyframe_min_interval", None) if params is not None else values.get("keyframe_min_interval")
    footage = Footage(frame_pts, key_pts, time_base, tuple(scene_cuts), gap)
    for mode in MODES.values():
        value = getattr(params, mode.field) if params is not None else values.get(mode.field)
        if not value:
            continue
        for i, t in mode.select(footage, value, warnings):
            p = int(frame_pts[i])
            w = wanted.setdefault(p, Wanted(pts=p, index=i))
            w.reasons.add(mode.name)
            if t is not None:
                w.requested.append(t)
    return wanted, warnings


def gop_of(key_pts: np.ndarray, pts: int) -> int:
    """Index of the keyframe at or before `pts` (-1: before the first keyframe)."""
    return int(np.searchsorted(key_pts, pts, side="right")) - 1


def plan_chunks(wanted_pts: list[int], frame_pts: np.ndarray, key_pts: np.ndarray,
                refresh: bool = False) -> list[Chunk]:
    """Group wanted frames into GOP-aligned decoder runs; keyframe-only runs can skip non-key decoding.
    `refresh`: the keyframes are gradual refresh points, and a run's start costs a GOP: consecutive GOPs merge."""
    key_set = set(int(k) for k in key_pts)
    groups: list[tuple[int, list[int]]] = []
    for p in sorted(wanted_pts):
        g = gop_of(key_pts, p)
        if groups and groups[-1][0] == g:
            groups[-1][1].append(p)
        else:
            groups.append((g, [p]))

    chunks: list[Chunk] = []
    cur: list[int] = []
    cur_first_g = cur_last_g = -2
    cur_keys = False

    def flush() -> None:
        nonlocal cur
        if cur:
            seek = int(key_pts[cur_first_g]) if cur_first_g >= 0 else None
            chunks.append(Chunk(id=len(chunks), seek_pts=seek, wanted=tuple(cur), keys_only=cur_keys))
        cur = []

    for g, pts in groups:
        keys_only = all(p in key_set for p in pts)
        if cur:
            if keys_only and cur_keys:
                ok = g - cur_last_g <= KEY_MERGE_GAP + 1 and len(cur) + len(pts) <= MAX_KEYS_PER_CHUNK
            elif refresh and g == cur_last_g + 1 and g - cur_first_g < REFRESH_GOPS_PER_CHUNK:
                ok = len(cur) + len(pts) <= MAX_WANTED_PER_CHUNK
            elif not keys_only and not cur_keys and g == cur_last_g + 1 and g >= 0:
                between = int(np.searchsorted(frame_pts, key_pts[g])) - int(np.searchsorted(frame_pts, cur[-1])) - 1
                ok = between <= MERGE_GAP_FRAMES and len(cur) + len(pts) <= MAX_WANTED_PER_CHUNK
            else:
                ok = False
            if not ok:
                flush()
        if not cur:
            cur_first_g, cur_keys = g, keys_only
        cur.extend(pts)
        cur_last_g = g
    flush()
    return chunks


def plan_batches(n_chunks: int, workers: int) -> list[tuple[int, int]]:
    """Cut chunks into contiguous [start, end) batches, one decoder open per batch, shrinking as the work runs
    out (guided self-scheduling: each takes 1/(BATCH_SHARE x workers) of what is left), so big batches keep
    overheads low early and single chunks even out the finish. Which batch a chunk lands in never changes
    its output: each chunk seeks and flushes the decoder before it starts."""
    out: list[tuple[int, int]] = []
    start = 0
    while start < n_chunks:
        size = max(1, min(MAX_CHUNKS_PER_BATCH, -(-(n_chunks - start) // max(1, workers * BATCH_SHARE))))
        out.append((start, start + size))
        start += size
    return out


def plan_scene_ranges(frame_pts: np.ndarray, key_pts: np.ndarray,
                      target_frames: int = SCENE_CHUNK_FRAMES) -> list[RangeChunk]:
    """Split all frames into GOP-aligned ranges of roughly `target_frames` for the scene-analysis pass."""
    n = len(frame_pts)
    starts = [0] + [int(np.searchsorted(frame_pts, k)) for k in key_pts if int(k) > int(frame_pts[0])]
    bounds: list[int] = [0]
    for s in starts[1:]:
        if s - bounds[-1] >= target_frames:
            bounds.append(s)
    bounds.append(n)
    out: list[RangeChunk] = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=False):
        lo = int(frame_pts[a])
        seek = lo if a > 0 else None
        out.append(RangeChunk(id=len(out), seek_pts=seek, lo=lo if a > 0 else None,
                              hi=int(frame_pts[b]) if b < n else None, expected=b - a))
    return out


def scene_cuts(pts: np.ndarray, diffs: np.ndarray, threshold: float) -> tuple[int, ...]:
    """Frames whose mean absolute difference from the previous frame exceeds `threshold` start a new scene."""
    return tuple(int(p) for p, d in zip(pts, diffs, strict=True) if d > threshold)
