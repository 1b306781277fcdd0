"""The continuity statement of one exhibit in a bundle: what the report says about time, sources and hands.

Built from the exhibit's checked events (the same timeline the portal shows) plus a few pictures: the
coverage timeline drawn from the record, the clock-time contact sheets in the bundle, and the stills in
the bundle with their time burnt in below the picture. Pictures are read hash-checked from the store
and scaled; at most `MAX_STILLS` stills and `MAX_SHEETS` sheet pages per exhibit are drawn, so the
report stays small whatever the bundle holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.custody.catalog import Exhibit
from pipeline.evidence import Evidence
from pipeline.frames.findings import findings_first
from pipeline.review.draw import burn_in, clock_label, coverage_png
from pipeline.review.facts import handlers, handoffs, seizures, sources
from pipeline.review.timeline import build_timeline
from pipeline.review.timesource import parse_instant

MAX_STILLS = 12
MAX_SHEETS = 4
DAMAGED = "DAMAGED FRAME: the decoder concealed errors (damaged data)"  # patched up, or predicted from one that was
DAMAGED_DATA = "DAMAGED FRAME: decoded from damaged coded data"  # under one whose coded data breaks its syntax
MAX_RESULT_WARNINGS = 4  # per process in the statement; the event holds them all
PROCESS_ACTIONS = ("review_copy_made", "clip_exported", "activity_indexed", "frames_extracted",
                   "contact_sheet_made", "metadata_extracted")


def damage_label(still: dict) -> str | None:
    """The caption a damaged still carries wherever it is shown, or None for an undamaged one."""
    return DAMAGED if still.get("decoder_concealed") else DAMAGED_DATA if still.get("bitstream_damaged") else None


@dataclass
class Continuity:
    exhibit: Exhibit
    timeline: dict[str, Any]
    seizures: list[dict[str, Any]]
    sources: list[dict[str, Any]]
    handlers: list[dict[str, Any]]
    handoffs: list[dict[str, Any]]
    processes: list[dict[str, Any]]
    coverage_png: bytes
    sheets: list[tuple[str, bytes]] = field(default_factory=list)  # (caption, PNG)
    stills: list[tuple[str, bytes]] = field(default_factory=list)  # (caption, PNG with burnt-in time)
    bundled: dict[str, str] = field(default_factory=dict)  # object key -> path in the bundle


def processes(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every process run on the exhibit's files, with its parameters and tool versions (Amped-style)."""
    out = []
    for e in events:
        if e.get("action") not in PROCESS_ACTIONS:
            continue
        p = dict(e.get("parameters") or {})
        command = p.pop("command", None) or p.pop("commands", None)
        p.pop("source", None)
        p.pop("parts", None)
        out.append({"seq": e.get("seq"), "time": e.get("time"), "action": e.get("action"),
                    "by": (e.get("actor") or {}).get("name"), "tools": e.get("tools") or {},
                    "parameters": {k: v for k, v in p.items()
                                   if not isinstance(v, dict | list) and v not in ("", None)},
                    "command": command, "result": process_result(e.get("details") or {}, e.get("seq"))})
    return out


def process_result(details: dict[str, Any], seq: Any = None) -> str:
    """What a process found, in words: a reader must learn that the footage was damaged or cut off from the
    statement itself, not from the event log."""
    parts = []
    if "stills" in details:
        parts.append(f"{details['stills']} stills")
    if details.get("complete") is False:
        parts.append("NOT COMPLETE: the file is truncated or damaged")
    # what the findings mean first; the decoder's own log lines (the evidence for them) after
    warnings = findings_first(details.get("warnings") or [])
    parts += [w if len(w) <= 200 else w[:199] + "…" for w in warnings[:MAX_RESULT_WARNINGS]]
    if len(warnings) > MAX_RESULT_WARNINGS:
        parts.append(f"{len(warnings) - MAX_RESULT_WARNINGS} more warnings in custody event #{seq}")
    return "; ".join(x for x in parts if x)


def _read(ev: Evidence, f: Any) -> bytes | None:
    from pipeline.review.sheets import read_checked

    try:
        return read_checked(ev, f)
    except Exception:  # noqa: BLE001 - a picture that cannot be read is left out; the file list still has it
        return None


def continuity_for(ev: Evidence, exhibit: Exhibit, events: list[dict[str, Any]], files: list[Any]) -> Continuity:
    """The statement for one exhibit; `files` are the bundle's files (BundleFile) for this exhibit."""
    tl = build_timeline({**exhibit.__dict__}, events)
    lanes = [(exhibit.ref if not tl["cameras"] else f"{exhibit.ref} ({', '.join(tl['cameras'])})", tl["coverage"])]
    out = Continuity(exhibit, tl, seizures(events), sources(events), handlers(events), handoffs(events),
                     processes(events), coverage_png(lanes))
    by_key = {f.key: f for f in files if getattr(f, "key", None)}
    out.bundled = {k: f.path for k, f in by_key.items()}
    sheets = [s for s in tl["contact_sheets"] if s.get("key") in by_key][:MAX_SHEETS]
    for s in sheets:
        f = by_key[s["key"]]
        data = _read(ev, f)
        if data:
            out.sheets.append((f"Contact sheet in clock time, page {s.get('page')} of {s.get('pages')} "
                               f"({s.get('first')} to {s.get('last')}); in the bundle as {f.path}", data))
    stills = [s for s in tl["stills"] if s.get("key") in by_key][:MAX_STILLS]
    for s in stills:
        f = by_key[s["key"]]
        data = _read(ev, f)
        if not data:
            continue
        when = clock_label(parse_instant(s["wallclock"])) if s.get("wallclock") else "no clock time"
        lines = [f"{when}  |  exhibit {exhibit.ref}", f"{s.get('source_name')} at {float(s.get('offset') or 0):.3f} s"
                 f"  |  pixels SHA-256 {str(s.get('pixel_sha256'))[:16]}..."]
        label = damage_label(s)
        if label:
            lines.append(label)
        try:
            drawn = burn_in(data, lines)
        except Exception:  # noqa: BLE001 - an undecodable still is listed in the files table, not drawn
            drawn = None
        if drawn:
            damaged = f"; {label}" if label else ""
            out.stills.append((f"{when}, {s.get('source_name')}; in the bundle as {f.path}{damaged}", drawn))
    return out
