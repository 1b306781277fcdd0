"""Frame-selection modes: one registry that the planner, the CLI, the API and the portal all read.

A mode says which frames it wants (as frame indices into the probed presentation
order), under which `ExtractParams` field it is switched on, and how people name
it (CLI option, portal label, help). Adding a mode is one `register()` call here
plus, if it needs a new parameter, one field on `ExtractParams`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

import numpy as np


@dataclass(frozen=True)
class Footage:
    """What a mode may look at: presentation timestamps of every frame and of the keyframes."""

    frame_pts: np.ndarray
    key_pts: np.ndarray
    time_base: Fraction
    scene_cuts: tuple[int, ...] = ()
    keyframe_min_interval: float | None = None  # as in Selection: None = automatic (see keyframe_min_interval)

    @property
    def first(self) -> int:
        return int(self.frame_pts[0])

    def offset_of(self, i: int) -> Fraction:
        """Seconds from the first frame to frame `i`."""
        return Fraction(int(self.frame_pts[i]) - self.first) * self.time_base

    @property
    def last_offset(self) -> Fraction:
        return self.offset_of(-1)

    @property
    def end_offset(self) -> Fraction:
        return self.last_offset + typical_frame_duration(self.frame_pts) * self.time_base

    def index_at(self, offset: Fraction) -> int:
        """The frame on screen `offset` seconds after the first frame."""
        return frame_at(self.frame_pts, self.first + offset / self.time_base)

    def index_of(self, pts: int) -> int:
        return int(np.searchsorted(self.frame_pts, pts))


#: (frame index, requested time or None); warnings go to the list
Selector = Callable[[Footage, Any, list[str]], Iterable[tuple[int, float | None]]]


@dataclass(frozen=True)
class FrameMode:
    name: str  # reason recorded on each still it picks
    field: str  # the ExtractParams field that switches it on
    value: Literal["seconds", "flag", "times"]
    cli_option: str
    label: str
    help: str
    select: Selector
    needs_scene_pass: bool = False


MODES: dict[str, FrameMode] = {}


def register(mode: FrameMode) -> FrameMode:
    if mode.name in MODES:
        raise ValueError(f"frame mode {mode.name!r} registered twice")
    MODES[mode.name] = mode
    return mode


def active(params: Any) -> list[tuple[FrameMode, Any]]:
    """The modes `params` switches on, with their values, in registry order."""
    return [(m, getattr(params, m.field)) for m in MODES.values() if getattr(params, m.field)]


def exact(x: float) -> Fraction:
    return Fraction(repr(float(x)))


def frame_at(frame_pts: np.ndarray, target_pts: Fraction) -> int:
    """Index of the frame on screen at `target_pts`: the last one with pts <= target (-1 if none)."""
    return int(np.searchsorted(frame_pts, int(np.floor(target_pts)), side="right")) - 1


def typical_frame_duration(frame_pts: np.ndarray) -> int:
    if len(frame_pts) < 2:
        return 1
    return max(1, int(np.median(np.diff(frame_pts))))


#: requested times listed on one still when more fall on its frame (an interval shorter than a frame, or a frame
#: on screen through a long gap); the rest are skipped, not walked, so a tiny interval cannot stall the planner
REQUESTS_LISTED = 16


def _interval(f: Footage, every: float, warnings: list[str]) -> Iterable[tuple[int, float | None]]:
    """Every `every` seconds from the first frame: the frame on screen then. Work is bounded by the frames, not
    by the number of requests (`--every 1e-10s` on an hour would otherwise be 3.6e13 steps)."""
    step = exact(every)
    n = len(f.frame_pts)
    k, capped = 0, 0
    while k * step <= f.last_offset:
        i = f.index_at(k * step)
        # frame i is on screen until the next frame's offset: the first request at or after it is k_next
        if i + 1 < n:
            k_next = max(k + 1, -(-f.offset_of(i + 1) // step))
        else:
            k_next = int(f.last_offset // step) + 1
        for j in range(k, min(k_next, k + REQUESTS_LISTED)):
            yield i, float(j * step)
        capped += k_next - k > REQUESTS_LISTED
        k = k_next
    if capped:
        warnings.append(f"more than {REQUESTS_LISTED} requested times (every {every:g}s) fell on each of {capped} "
                        f"frame(s); each such still lists the first {REQUESTS_LISTED}")


def _timestamps(f: Footage, times: tuple[float, ...], warnings: list[str]) -> Iterable[tuple[int, float | None]]:
    for t in times:
        ft = exact(t)
        if ft < 0 or ft >= f.end_offset:
            warnings.append(f"timestamp {t}s is outside the footage (0 .. {float(f.end_offset):.3f}s); skipped")
            continue
        yield f.index_at(ft), float(ft)


ALL_INTRA_KEYFRAME_INTERVAL = Fraction(1)


def keyframe_min_interval(asked: float | None, n_keys: int, n_frames: int) -> Fraction:
    """Seconds kept between keyframe stills: as asked, else 1 s when every frame is a keyframe (all-intra
    footage such as MJPEG, where "every keyframe" would mean every frame), else 0 (every keyframe)."""
    if asked is not None:
        return exact(asked)
    return ALL_INTRA_KEYFRAME_INTERVAL if n_frames > 1 and n_keys >= n_frames else Fraction(0)


def _keyframes(f: Footage, _on: bool, _w: list[str]) -> Iterable[tuple[int, float | None]]:
    """Every keyframe, or with a minimum interval the first keyframe at or after the last kept one + interval
    (media time), so the spacing never drifts."""
    gap = keyframe_min_interval(f.keyframe_min_interval, len(f.key_pts), len(f.frame_pts))
    next_due: Fraction | None = None
    for p in f.key_pts:
        off = Fraction(int(p) - f.first) * f.time_base
        if gap and next_due is not None and off < next_due:
            continue
        next_due = off + gap
        yield f.index_of(int(p)), None


def _scenes(f: Footage, _on: bool, _w: list[str]) -> Iterable[tuple[int, float | None]]:
    yield 0, None
    for p in f.scene_cuts:
        i = f.index_of(p)
        if i < len(f.frame_pts) and int(f.frame_pts[i]) == p:
            yield i, None


register(FrameMode("interval", "every_seconds", "seconds", "--every", "Every N seconds",
                   "One still every interval of media time, e.g. 1s.", _interval))
register(FrameMode("timestamp", "timestamps", "times", "--at", "At these times",
                   "Stills at the given media times in seconds, e.g. 12.5,30.", _timestamps))
register(FrameMode("keyframe", "keyframes", "flag", "--keyframes", "Every keyframe",
                   "A still of every keyframe (intra-coded picture); on all-intra footage (MJPEG) at most one a "
                   "second unless --keyframe-min-interval says otherwise.", _keyframes))
register(FrameMode("scene", "scenes", "flag", "--scenes", "Scene / motion changes",
                   "A still at every scene or motion change (mean absolute difference of 64x36 grey frames).",
                   _scenes, needs_scene_pass=True))
