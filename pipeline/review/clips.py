"""Clip export: a clock-time range of an exhibit becomes one derived MP4 with its custody event.

Two modes, each labelled in the record and on every page that shows the clip:
- `stream_copy`: the original compressed pictures, cut at keyframes: the clip starts at the keyframe at or
  before the requested start and ends before the first keyframe after the requested end (whole GOPs);
- `frame_exact`: exactly the frames on screen from the requested start to the requested end, re-encoded
  with libx264 (a transcoded working copy, not the original pictures).
A range over several files (camera segments) is cut per file and joined with ffmpeg's concat demuxer;
footage either side of a recording gap is joined too, and the record lists every part and gap.
Each part's frame count is checked against the plan after cutting: a clip that does not hold exactly
the planned frames is refused, never stored.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.custody.actor import Actor
from pipeline.custody.catalog import Case, Exhibit
from pipeline.errors import NotFoundError, UsageError
from pipeline.evidence import Evidence
from pipeline.review.copies import X264
from pipeline.review.objects import checked_chain, find_object
from pipeline.review.remux import ENGINE, copy_packets
from pipeline.review.timeline import build_timeline
from pipeline.review.timesource import iso_utc, parse_instant
from pipeline.review.tools import ReviewToolError, ffmpeg_version, run_ffmpeg, stream_facts

ACTION = "clip_exported"
KIND = "clip"
MODES = {"stream_copy": "CLIP, stream copy cut at keyframes (original pictures; may start up to one GOP early "
                        "and end up to one GOP late)",
         "frame_exact": "CLIP, frame-exact, TRANSCODED with libx264 (a working copy re-encoded, not the original "
                        "pictures)"}
MAX_CLIP_SECONDS = 6 * 3600


@dataclass
class PartPlan:
    """Which frames of one file go into the clip (indices into its presentation order, inclusive)."""

    first: int
    last: int
    start_offset: float  # seconds from the file's first frame to the part's first frame
    end_offset: float  # ... to the end of its last frame


def plan_part(frame_pts: np.ndarray, key_pts: np.ndarray, time_base: float, a: float, b: float,
              mode: str) -> PartPlan:
    """Frames on screen from offset `a` to `b` (frame_exact), widened to whole GOPs for stream_copy (pure)."""
    first_pts = int(frame_pts[0])
    off = (frame_pts - first_pts).astype(np.float64) * time_base
    step = float(np.median(np.diff(off))) if len(off) > 1 else 0.04
    i0 = max(0, int(np.searchsorted(off, a, side="right")) - 1)
    i1 = max(i0, int(np.searchsorted(off, b, side="left")) - 1)
    if mode == "stream_copy":
        keys = np.searchsorted(frame_pts, key_pts)
        before = keys[keys <= i0]
        i0 = int(before[-1]) if len(before) else 0
        after = keys[keys > i1]
        i1 = int(after[0]) - 1 if len(after) else len(frame_pts) - 1
    return PartPlan(i0, i1, float(off[i0]), float(off[i1]) + step)


def exact_args(frame_pts: np.ndarray, time_base: float, container_start: float, plan: PartPlan) -> list[str]:
    """ffmpeg arguments for a frame-exact transcode: original timestamps kept (`-copyts`), frames chosen by pts.

    Only files longer than a minute get a coarse keyframe seek (to 10 s before the part, accurate seek off),
    so the exact choice is always the trim filter's, by each frame's own presentation timestamp.
    """
    p0, p1 = int(frame_pts[plan.first]), int(frame_pts[plan.last])
    seek = float(p0) * time_base - container_start - 10.0
    coarse = ["-noaccurate_seek", "-ss", f"{seek:.6f}"] if seek > 50.0 else []
    return [*coarse, "-copyts", "-i", "{source}", "-map", "0:v:0", "-map", "0:a:0?", "-dn", "-sn",
            "-vf", f"trim=start_pts={p0}:end_pts={p1 + 1},setpts=PTS-STARTPTS",
            "-af", f"atrim=start={p0 * time_base:.6f}:end={(p1 + 1) * time_base:.6f},asetpts=PTS-STARTPTS",
            *X264, "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", "-f", "mp4", "{output}"]


def _parts(timeline: dict[str, Any], start: datetime, end: datetime) -> list[tuple[dict[str, Any], float, float]]:
    out = []
    for f in timeline["files"]:
        if f["kind"] != "video" or not f["start"] or not f["end"]:
            continue
        fs, fe = parse_instant(f["start"]), parse_instant(f["end"])
        if fs is None or fe is None or fe <= start or fs >= end:
            continue
        out.append((f, max(0.0, (start - fs).total_seconds()), (min(end, fe) - fs).total_seconds()))
    return out


def _container_start(path: Path) -> float:
    import av

    with av.open(str(path)) as c:
        return float(c.start_time or 0) / 1_000_000


def make_clip(ev: Evidence, case: Case, exhibit: Exhibit, start: str, end: str, mode: str, *,
              actor: Actor, note: str = "") -> dict[str, Any]:
    """Cut [start, end) of the exhibit's clock into a clip, store it as derived and record `clip_exported`."""
    from pipeline.frames.probe import probe

    if mode not in MODES:
        raise UsageError(f"clip mode must be one of {', '.join(MODES)}")
    s, e = parse_instant(start), parse_instant(end)
    if s is None or e is None or e <= s:
        raise UsageError("give the clip's start and end as ISO 8601 clock times, end after start")
    if (e - s).total_seconds() > MAX_CLIP_SECONDS:
        raise UsageError(f"a clip may be at most {MAX_CLIP_SECONDS // 3600} h long")
    chain = checked_chain(ev, exhibit.id)
    timeline = build_timeline(exhibit.__dict__, chain.events)
    parts = _parts(timeline, s, e)
    if not parts:
        raise NotFoundError("no footage was recorded between those clock times")
    refs, recorded_parts, commands, sources = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="custody-clip-") as tmp:
        work = Path(tmp)
        outs: list[Path] = []
        for n, (f, a, b) in enumerate(parts):
            obj = find_object(ev, chain.events, f["object_id"])
            if obj is None:
                raise NotFoundError(f"the original {f['name']} is not in the exhibit's record")
            sources.append(obj)
            local = work / f"part{n:03d}.src"
            ev.store.download_verified(obj.bucket, obj.key, obj.version_id, obj.sha256, local)
            info = probe(local)
            fp = info.frame_pts
            plan = plan_part(fp, info.key_pts, float(info.time_base), a, b, mode)
            out = work / f"part{n:03d}.mp4"
            if mode == "stream_copy":
                end_pts = int(fp[plan.last + 1]) if plan.last + 1 < len(fp) else int(fp[plan.last]) + 1
                copy_packets(local, out, int(fp[plan.first]), end_pts)
                commands.append([ENGINE, f"first_pts={int(fp[plan.first])}", f"end_pts={end_pts}"])
            else:
                args = exact_args(fp, float(info.time_base), _container_start(local), plan)
                commands.append(run_ffmpeg(args, local, out))
            got = stream_facts(out).frames
            want = plan.last - plan.first + 1
            if got != want:
                raise ReviewToolError(f"the cut of {f['name']} holds {got} frames, {want} were planned; "
                                      "nothing was stored")
            fs = parse_instant(f["start"])
            recorded_parts.append({"source": {"bucket": obj.bucket, "key": obj.key, "version_id": obj.version_id,
                                              "sha256": obj.sha256}, "name": f["name"], "frames": want,
                                   "first_frame": plan.first, "last_frame": plan.last,
                                   "start": iso_utc(fs + timedelta(seconds=plan.start_offset)),  # type: ignore[operator]
                                   "end": iso_utc(fs + timedelta(seconds=plan.end_offset)),  # type: ignore[operator]
                                   "start_offset": round(plan.start_offset, 6),
                                   "end_offset": round(plan.end_offset, 6)})
            refs.append({"bucket": obj.bucket, "key": obj.key, "version_id": obj.version_id, "sha256": obj.sha256,
                         "size": obj.size, "role": "reference"})
            outs.append(out)
        final = work / "clip.mp4"
        if len(outs) == 1:
            outs[0].rename(final)
        else:
            listing = work / "parts.txt"
            listing.write_text("".join(f"file '{p.name}'\n" for p in outs))
            commands.append(run_ffmpeg(["-f", "concat", "-safe", "0", "-i", "{source}", "-c", "copy",
                                        "-movflags", "+faststart", "-f", "mp4", "{output}"], listing, final))
        facts = stream_facts(final)
        gaps = [g for g in timeline["gaps"] if parse_instant(g["end"]) > s and parse_instant(g["start"]) < e]  # type: ignore[operator]
        src = recorded_parts[0]["source"]
        stored, credential = final, None
        if ev.settings.content_credentials:  # the clip leaves the system: it names its source inside the file
            from pipeline.provenance.stamp import Stamper, source_record

            stamper = Stamper(ev.settings, source_record(case, exhibit, sources[0]), ACTION,
                              tools={"ffmpeg": ffmpeg_version()})
            stored, credential = stamper.stamp(final, "clip_copy" if mode == "stream_copy" else "clip",
                                               {"mode": mode, "start": iso_utc(s), "end": iso_utc(e),
                                                "parts": len(recorded_parts)})
        _, ref = ev.add_derived(case, exhibit, stored, source=src, kind=KIND, actor=actor, content_type="video/mp4")
        ref["original_name"] = final.name
        ref["info"] = {"label": MODES[mode], "mode": mode, "working_copy": mode == "frame_exact",
                       "requested_start": iso_utc(s), "requested_end": iso_utc(e),
                       "clip_start": recorded_parts[0]["start"], "clip_end": recorded_parts[-1]["end"],
                       "frames": facts.frames, "parts": len(recorded_parts), "spans_gaps": len(gaps),
                       "first_frame_time": round(facts.first_time, 6), "duration": round(facts.duration, 6),
                       "content_type": "video/mp4", **({"c2pa": credential} if credential else {})}
    return ev.record(case, exhibit, ACTION, actor=actor, objects=[*refs, ref], tools={"ffmpeg": ffmpeg_version()},
                     parameters={"mode": mode, "label": MODES[mode], "requested_start": start, "requested_end": end,
                                 "parts": recorded_parts, "commands": commands, "note": note[:500]},
                     details={"gaps_inside": [{k: g.get(k) for k in ("start_recorded", "end_recorded", "reason")}
                                              for g in gaps], "frames": facts.frames})
