"""Who, where and from what: seizure details, sources, handlers and hand-offs, read from custody events (pure).

These are the parts of a continuity statement that are not about time: where the footage came from
(camera or seized device), the seizure as the officer recorded it (with the time zone it was given in),
everyone who acted on the exhibit, and each point where it changed hands.
"""

from __future__ import annotations

from typing import Any

INTAKE_ACTIONS = ("ingested", "segment_recorded", "duplicate_linked")
SEIZURE_KEYS = ("seized_at", "seized_at_local", "seized_at_zone", "seized_at_offset", "seized_at_note", "location",
                "device")
HANDOFF_ACTIONS = {
    "exhibit_created": "exhibit registered",
    "ingested": "received into the evidence store",
    "segment_recorded": "recorded from the camera into the evidence store",
    "duplicate_linked": "identical file already held: linked",
    "downloaded": "copy fetched from the store",
    "bundle_download_link_issued": "download link for a bundle issued",
    "exported": "disclosed in an evidence bundle",
    "legal_hold_on": "legal hold placed",
    "legal_hold_off": "legal hold lifted",
}


def _command_source(details: dict[str, Any]) -> str | None:
    cmd = details.get("command") or []
    if isinstance(cmd, list) and "-i" in cmd:
        i = cmd.index("-i")
        if i + 1 < len(cmd):
            return str(cmd[i + 1])
    return None


def seizures(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Distinct seizure records of the exhibit's originals (time in UTC, the zone it was entered in, place, device)."""
    out: list[dict[str, Any]] = []
    for e in events:
        if e.get("action") not in INTAKE_ACTIONS:
            continue
        p = e.get("parameters") or {}
        rec = {k: p[k] for k in SEIZURE_KEYS if p.get(k) not in (None, "")}
        if rec and rec not in out:
            out.append(rec)
    return out


def sources(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cameras (with the stream they were recorded from) and devices the exhibit's files came from."""
    out: list[dict[str, Any]] = []
    for e in events:
        p = e.get("parameters") or {}
        if e.get("action") == "segment_recorded":
            rec = {"kind": "camera", "camera": p.get("camera"),
                   "stream": (p.get("source") or {}).get("url") if isinstance(p.get("source"), dict)
                   else _command_source(e.get("details") or {}), "tool": (e.get("tools") or {}).get("ffmpeg")}
        elif e.get("action") == "ingested" and p.get("device"):
            rec = {"kind": "device", "device": p.get("device"), "via": p.get("source") or p.get("via")}
        else:
            continue
        rec = {k: v for k, v in rec.items() if v}
        if rec not in out:
            out.append(rec)
    return out


def handlers(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Everyone who acted on the exhibit, with their role, first and last action and how many."""
    by: dict[tuple[str, str], dict[str, Any]] = {}
    for e in events:
        a = e.get("actor") or {}
        k = (str(a.get("name", "")), str(a.get("role", "")))
        h = by.setdefault(k, {"name": k[0], "role": k[1], "first": e.get("time"), "last": e.get("time"),
                              "events": 0, "actions": []})
        h["last"] = e.get("time")
        h["events"] += 1
        if e.get("action") not in h["actions"]:
            h["actions"].append(e.get("action"))
    return list(by.values())


def handoffs(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every point where the exhibit or a copy of it changed hands, in order."""
    out = []
    for e in events:
        what = HANDOFF_ACTIONS.get(str(e.get("action")))
        if what is None:
            continue
        p = e.get("parameters") or {}
        a = e.get("actor") or {}
        objs = [o.get("original_name") or o.get("kind") or o.get("role") for o in e.get("objects") or []
                if o.get("role") != "reference"]
        to = p.get("recipient") or ("evidence store" if e.get("action") in INTAKE_ACTIONS else
                                    a.get("name") if e.get("action") == "downloaded" else "")
        out.append({"seq": e.get("seq"), "time": e.get("time"), "action": e.get("action"), "what": what,
                    "by": f"{a.get('name', '')} ({a.get('role', '')})", "to": to or "", "reason": p.get("reason") or "",
                    "objects": objs[:3] + ([f"+{len(objs) - 3} more"] if len(objs) > 3 else [])})
    return out
