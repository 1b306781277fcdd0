"""One clock-time axis per exhibit, built from its custody events alone (pure: no I/O).

A camera exhibit's segments, a phone's clips or a card of stills become one recording on the wall
clock: what was recorded when (and how each time is known), the gaps with their recorded reasons,
time not scheduled, the stills, review copies, clips and activity indexes made from each file. Files
whose time is unknown are listed apart rather than guessed onto the axis. The API, the portal and the
report all draw from this one structure, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pipeline.review.objects import object_id
from pipeline.review.timesource import (
    METADATA_ACTION,
    SEGMENT_ACTION,
    FileTime,
    clock_offsets,
    epoch_us,
    iso_utc,
    metadata_time,
    parse_instant,
    segment_time,
    to_float,
)

CONTIGUOUS_S = 1.0  # segments of one recording meet within this (the recorder's own bound)
DERIVED_KINDS = ("review_copy", "activity_index", "clip", "still", "thumbnail", "contact_sheet")


@dataclass
class Span:
    start: datetime
    end: datetime
    state: str  # recorded | gap | not_scheduled | missed | unexplained | (a coverage record's own state)
    reason: str = ""
    source: str = ""  # which record says so
    start_recorded: str | None = None
    end_recorded: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return max(0.0, (self.end - self.start).total_seconds())

    def as_dict(self) -> dict[str, Any]:
        return {"start": iso_utc(self.start), "end": iso_utc(self.end), "start_us": epoch_us(self.start),
                "end_us": epoch_us(self.end), "seconds": round(self.seconds, 3),
                "state": self.state, "reason": self.reason, "source": self.source,
                "start_recorded": self.start_recorded, "end_recorded": self.end_recorded, **self.extra}


def _ref(o: dict[str, Any]) -> tuple[str, str, str | None]:
    return (o.get("bucket", ""), o.get("key", ""), o.get("version_id"))


def _src(o: dict[str, Any]) -> tuple[str, str, str | None]:
    return _ref(o.get("source") or {})


def _originals(events: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    seen: dict[tuple[str, str, str | None], tuple[dict[str, Any], dict[str, Any]]] = {}
    for e in events:
        for o in e.get("objects") or []:
            if o.get("role") == "original" and _ref(o) not in seen:
                seen[_ref(o)] = (o, e)
    return list(seen.values())


def _derived(events: list[dict[str, Any]]) -> dict[str, list[tuple[dict[str, Any], dict[str, Any]]]]:
    out: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {k: [] for k in DERIVED_KINDS}
    seen: set[tuple[str, str, str | None]] = set()
    for e in events:
        for o in e.get("objects") or []:
            if o.get("role") == "derived" and o.get("kind") in out and _ref(o) not in seen:
                seen.add(_ref(o))
                out[o["kind"]].append((o, e))
    return out


def _file_kind(o: dict[str, Any]) -> str:
    ctype = str(o.get("content_type") or "")
    kind = str((o.get("info") or {}).get("kind") or "")
    if kind in ("video", "image"):
        return kind
    return "video" if ctype.startswith("video/") else "image" if ctype.startswith("image/") else "other"


def _file_entry(o: dict[str, Any], e: dict[str, Any], ft: FileTime) -> dict[str, Any]:
    params = e.get("parameters") or {}
    partial = bool(params.get("partial")) or o.get("status") == "partial"
    dur = (ft.end - ft.start).total_seconds() if ft.start and ft.end else None
    return {"object_id": object_id(o["bucket"], o["key"]), "bucket": o["bucket"], "key": o["key"],
            "version_id": o.get("version_id"), "sha256": o.get("sha256"), "size": int(o.get("size") or 0),
            "name": o.get("original_name") or o["key"].rsplit("/", 1)[-1], "status": o.get("status", "ok"),
            "kind": _file_kind(o), "content_type": o.get("content_type"), "event_seq": e.get("seq"),
            "action": e.get("action"), "start": iso_utc(ft.start), "end": iso_utc(ft.end),
            "start_us": epoch_us(ft.start), "end_us": epoch_us(ft.end),
            "start_recorded": ft.start_recorded, "end_recorded": ft.end_recorded,
            "duration": round(dur, 3) if dur is not None else None, "time_method": ft.method, "time_how": ft.how,
            "clock_offset_ms": ft.clock_offset_ms, "partial": partial, "camera": params.get("camera"),
            "segment_index": params.get("segment_index"), "connection": params.get("connection"),
            "review_copy": None, "activity": None}


def _gap_span(e: dict[str, Any]) -> Span | None:
    p = e.get("parameters") or {}
    s, t = parse_instant(p.get("start")), parse_instant(p.get("end"))
    if s is None or t is None:
        return None
    reason = str(p.get("reason") or ("camera did not come back" if p.get("open_ended") else "not recorded"))
    return Span(s, t, "gap", reason, f"gap event {e.get('seq')}", str(p.get("start")), str(p.get("end")),
                {"camera": p.get("camera"), "event_seq": e.get("seq"), "open_ended": bool(p.get("open_ended")),
                 "seconds_recorded": p.get("seconds")})


def _coverage_span(e: dict[str, Any]) -> Span | None:
    p = e.get("parameters") or {}
    s, t = parse_instant(p.get("start")), parse_instant(p.get("end"))
    state = str(p.get("state") or "").strip().replace(" ", "_").lower()
    if s is None or t is None or not state:
        return None
    return Span(s, t, state, str(p.get("reason") or ""), f"coverage event {e.get('seq')}", str(p.get("start")),
                str(p.get("end")), {"event_seq": e.get("seq")})


def _merge(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for s, t in sorted(spans):
        if out and (s - out[-1][1]).total_seconds() <= CONTIGUOUS_S:
            out[-1] = (out[-1][0], max(out[-1][1], t))
        else:
            out.append((s, t))
    return out


def _subtract(span: tuple[datetime, datetime], covers: list[tuple[datetime, datetime]]
              ) -> list[tuple[datetime, datetime]]:
    """The parts of `span` no cover touches."""
    parts = [span]
    for cs, ct in covers:
        nxt = []
        for s, t in parts:
            if ct <= s or cs >= t:
                nxt.append((s, t))
                continue
            if cs > s:
                nxt.append((s, cs))
            if ct < t:
                nxt.append((ct, t))
        parts = nxt
    return [(s, t) for s, t in parts if (t - s).total_seconds() > CONTIGUOUS_S]


def _new_facts(records: list[Span], gaps: list[Span]) -> list[Span]:
    """Coverage records that say something the segments and gap events do not.

    Camera runs summarise their own spans as `recorded` and `gap` coverage, and a missed window is both a
    `gap` event and `missed` coverage: draw each span once, from the most specific record.
    """
    def same(a: Span, b: Span) -> bool:
        return abs((a.start - b.start).total_seconds()) <= CONTIGUOUS_S and \
            abs((a.end - b.end).total_seconds()) <= CONTIGUOUS_S

    out = []
    for r in records:
        if r.state == "recorded":
            continue  # the segments themselves are drawn
        if r.state in ("gap", "missed") and any(same(r, g) or (g.start <= r.start and r.end <= g.end) for g in gaps):
            continue
        out.append(r)
    return out


STILL_FLAGS = ("decoder_concealed", "bitstream_damaged", "interlaced")  # what a reader must know of a still's frame


def still_flags(info: dict[str, Any]) -> dict[str, bool]:
    """A still's flags from its record, for every view that shows it (timeline, still lookup, portal)."""
    return {k: bool(info.get(k)) for k in STILL_FLAGS}


PROBING_ACTIONS = ("frames_extracted", "activity_indexed")  # processes whose record carries the probe's damage


def _damaged(events: list[dict[str, Any]], by_ref: dict[tuple[str, str, str | None], dict[str, Any]]) -> list[Span]:
    """Time a file covers but shows wrongly: pictures decoded from damaged data, as the probe of a frame
    extraction or an activity index found them, or the decoder while extracting (`damaged_spans`), on the
    clock of files whose time is known; each span once however many processes found it."""
    out: dict[tuple[Any, ...], Span] = {}
    for e in events:
        if e.get("action") not in PROBING_ACTIONS:
            continue
        ref = _ref((e.get("parameters") or {}).get("source") or {})
        f = by_ref.get(ref)
        t0 = parse_instant(f["start"]) if f else None
        if f is None or t0 is None:
            continue
        for d in ((e.get("details") or {}).get("probe") or {}).get("damaged_spans") or []:
            a, b = to_float(d.get("start")), to_float(d.get("end"))
            if a is None or b is None or (ref, a, b) in out:
                continue
            why = (f"{d.get('pictures')} picture(s) of {f['name']} at {a:.3f}–{b:.3f} s decoded from damaged data "
                   f"({d.get('problem')})")
            out[(ref, a, b)] = Span(t0 + timedelta(seconds=a), t0 + timedelta(seconds=b), "damaged", why,
                                    f"{e.get('action')} event {e.get('seq')}",
                                    extra={"file": f["name"], "offset_start": a, "offset_end": b})
    return list(out.values())


def coverage(files: list[dict[str, Any]], gaps: list[Span], records: list[Span]) -> list[Span]:
    """Recorded spans (touching segments merged), recorded gaps and coverage records, and holes nobody explains."""
    recorded = _merge([(parse_instant(f["start"]), parse_instant(f["end"])) for f in files  # type: ignore[misc]
                       if f["kind"] == "video" and f["start"] and f["end"]])
    spans = [Span(s, t, "recorded", "", "segments / files") for s, t in recorded]
    records = _new_facts(records, gaps)
    explained = [(g.start, g.end) for g in gaps + records]
    for (_, a), (b, _) in zip(recorded, recorded[1:], strict=False):
        for s, t in _subtract((a, b), explained):
            spans.append(Span(s, t, "unexplained", "no footage, and no gap or coverage record explains it",
                              "computed"))
    return sorted(spans + gaps + records, key=lambda sp: (sp.start, sp.end))


def _still_entries(derived: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]],
                   files: dict[tuple[str, str, str | None], dict[str, Any]]) -> list[dict[str, Any]]:
    thumbs = {str((o.get("info") or {}).get("still_png_sha256")): o for o, _ in derived["thumbnail"]}
    out = []
    for o, e in derived["still"]:
        info = o.get("info") or {}
        src = files.get(_src(o))
        offset = to_float(info.get("offset"))
        wall = parse_instant(info.get("wallclock"))
        how = "still's recorded wall-clock time"
        if wall is None and src and src["start"] and offset is not None:
            wall = parse_instant(src["start"]) + timedelta(seconds=offset)  # type: ignore[operator]
            how = f"file start ({src['time_method']}) + {offset:.3f} s"
        # a thumbnail names its still by the encoder's PNG hash (the stored still may carry a credential too)
        thumb = thumbs.get(str(info.get("png_sha256") or o.get("sha256")))
        out.append({"object_id": object_id(o["bucket"], o["key"]), "key": o["key"], "sha256": o.get("sha256"),
                    "thumb_object_id": object_id(thumb["bucket"], thumb["key"]) if thumb else None,
                    "source_object_id": src["object_id"] if src else None,
                    "source_name": src["name"] if src else None, "offset": offset, "pts": info.get("pts"),
                    "wallclock": iso_utc(wall), "wallclock_us": epoch_us(wall),
                    "time_how": how if wall else "no wall-clock time known",
                    "pixel_sha256": info.get("pixel_sha256"), "reasons": info.get("reasons") or [],
                    "name": o.get("original_name"), "event_seq": e.get("seq"),
                    "width": info.get("width"), "height": info.get("height"), **still_flags(info)})
    out.sort(key=lambda s: (s["wallclock"] is None, s["wallclock"] or "", s["source_name"] or "",
                            s["offset"] or 0.0))
    return out


def _info_entry(o: dict[str, Any], e: dict[str, Any]) -> dict[str, Any]:
    return {"object_id": object_id(o["bucket"], o["key"]), "key": o["key"], "sha256": o.get("sha256"),
            "size": int(o.get("size") or 0), "event_seq": e.get("seq"), "action": e.get("action"),
            "name": o.get("original_name"), **(o.get("info") or {})}


def build_timeline(exhibit: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """The exhibit on the wall clock; `exhibit` is its catalogue record (id, ref, officer, ...)."""
    offsets = clock_offsets(events)
    metadata: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    for e in events:
        if e.get("action") == METADATA_ACTION:
            for o in e.get("objects") or []:
                metadata.setdefault(_src(o), (e.get("details") or {}).get("metadata") or {})
    by_ref: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    for o, e in _originals(events):
        if e.get("action") == SEGMENT_ACTION:
            ft = segment_time(e.get("parameters") or {})
        else:
            ft = metadata_time(metadata.get(_ref(o), {}), offsets)
        by_ref[_ref(o)] = _file_entry(o, e, ft)
    derived = _derived(events)
    for kind, slot in (("review_copy", "review_copy"), ("activity_index", "activity")):
        for o, e in derived[kind]:
            f = by_ref.get(_src(o))
            if f is not None:
                f[slot] = _info_entry(o, e)  # the latest one wins
    files = list(by_ref.values())
    timed = sorted([f for f in files if f["start"]], key=lambda f: (f["start"], f["name"]))
    untimed = [f for f in files if not f["start"]]
    gaps = [g for g in (_gap_span(e) for e in events if e.get("action") == "gap") if g]
    records = [c for c in (_coverage_span(e) for e in events if e.get("action") == "coverage") if c]
    spans = sorted(coverage(timed, gaps, records) + _damaged(events, by_ref), key=lambda sp: (sp.start, sp.end))
    bounds = [parse_instant(f["start"]) for f in timed] + [parse_instant(f["end"]) for f in timed]
    bounds += [s.start for s in spans] + [s.end for s in spans]
    start = min((b for b in bounds if b), default=None)
    end = max((b for b in bounds if b), default=None)
    seconds = {state: round(sum(s.seconds for s in spans if s.state == state), 3)
               for state in sorted({s.state for s in spans})}
    cameras = sorted({str(f["camera"]) for f in files if f.get("camera")})
    return {
        "exhibit": {k: exhibit.get(k) for k in ("id", "ref", "officer", "description", "case_id")},
        "kind": "camera" if any(f["action"] == SEGMENT_ACTION for f in files) else "files",
        "cameras": cameras, "start": iso_utc(start), "end": iso_utc(end), "start_us": epoch_us(start),
        "end_us": epoch_us(end),
        "files": timed, "untimed": untimed, "coverage": [s.as_dict() for s in spans],
        "gaps": [g.as_dict() for g in sorted(gaps, key=lambda g: g.start)],
        "stills": _still_entries(derived, by_ref),
        "clips": [_info_entry(o, e) for o, e in derived["clip"]],
        "contact_sheets": [_info_entry(o, e) for o, e in derived["contact_sheet"]
                           if (o.get("info") or {}).get("clock")],
        "file_contact_sheets": [{**_info_entry(o, e), "source_name": by_ref.get(_src(o), {}).get("name")}
                                for o, e in derived["contact_sheet"] if not (o.get("info") or {}).get("clock")],
        "clock_offsets": [{"event_seq": s, "offset_ms": ms} for s, ms in offsets],
        "summary": {"files": len(files), "timed_files": len(timed), "untimed_files": len(untimed),
                    "partial_files": sum(1 for f in files if f["partial"]), "gaps": len(gaps),
                    "span_seconds": round((end - start).total_seconds(), 3) if start and end else 0.0,
                    "seconds_by_state": seconds},
    }


def locate(timeline: dict[str, Any], at: datetime) -> tuple[dict[str, Any], float] | None:
    """The footage file on the clock at `at`, and the offset into it (seconds since its first frame)."""
    for f in timeline["files"]:
        if f["kind"] != "video" or not f["start"] or not f["end"]:
            continue
        s, t = parse_instant(f["start"]), parse_instant(f["end"])
        if s is not None and t is not None and s <= at < t:
            return f, (at - s).total_seconds()
    return None
