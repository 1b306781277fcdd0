"""The continuity statement, rendered: the same sections for the HTML and the PDF report.

For a reader who is not an engineer: where the footage came from and how it was seized, what was
recorded when (each file's start and end exactly as the custody record holds them, and how that time
was obtained), every gap with its bounds, length and reason, a coverage summary and picture, who
handled it and each hand-off, what was done to it with which parameters, and the chosen stills and
contact sheets with their clock times.
"""

from __future__ import annotations

import base64
import html
from typing import Any

from pipeline.review.continuity import Continuity

STATES = {"recorded": "recorded", "gap": "gap (recorded reason)", "unexplained": "no footage, no record explains it",
          "not_scheduled": "not scheduled", "missed": "scheduled window missed",
          "damaged": "recorded but damaged (pictures decoded from damaged data)"}


def summary_rows(c: Continuity) -> list[tuple[str, str]]:
    tl = c.timeline
    secs = tl["summary"]["seconds_by_state"]
    rows = [("Recording span (UTC)", f"{tl['start'] or 'unknown'} to {tl['end'] or 'unknown'}"
             f" ({tl['summary']['span_seconds']:.3f} s)")]
    rows += [(f"Time {STATES.get(k, k.replace('_', ' '))}", f"{v:.3f} s") for k, v in sorted(secs.items())]
    rows.append(("Files", f"{tl['summary']['files']} ({tl['summary']['timed_files']} with a known time, "
                          f"{tl['summary']['untimed_files']} without, {tl['summary']['partial_files']} partial)"))
    rows.append(("Recorded gaps", str(tl["summary"]["gaps"])))
    return rows


def source_rows(c: Continuity) -> list[tuple[str, str]]:
    e = c.exhibit
    rows = [("Exhibit", f"{e.ref} (id {e.id})"), ("Producing officer", e.officer),
            ("Description", e.description or "-")]
    for s in c.sources:
        if s.get("kind") == "camera":
            rows.append(("Source camera", f"{s.get('camera')}; stream {s.get('stream') or 'not recorded'}; "
                                          f"recorded with {s.get('tool') or 'ffmpeg'}"))
        else:
            rows.append(("Source device", f"{s.get('device') or 'not recorded'} (received via {s.get('via')})"))
    for z in c.seizures:
        when = z.get("seized_at") or "time not recorded"
        if z.get("seized_at_local"):
            when += f" (UTC), entered as {z['seized_at_local']} {z.get('seized_at_zone', '')} " \
                    f"(UTC{z.get('seized_at_offset', '')})"
        elif z.get("seized_at"):
            when += " (UTC; the zone it was entered in was not recorded)"
        rows.append(("Seizure", f"{when}; place: {z.get('location') or 'not recorded'}; "
                                f"device: {z.get('device') or 'not recorded'}"))
    if not c.seizures:
        rows.append(("Seizure", "no seizure details recorded with these files"))
    return rows


def file_rows(c: Continuity) -> list[list[str]]:
    """# | file | start as recorded | end as recorded | length | how the time was obtained | notes | in bundle."""
    rows = []
    for n, f in enumerate(c.timeline["files"] + c.timeline["untimed"], 1):
        notes = ", ".join(x for x in ("PARTIAL segment (cut short by a drop-out)" if f["partial"] else "",
                                      f"status {f['status']}" if f["status"] not in ("ok", "partial") else "",
                                      f"camera {f['camera']}" if f.get("camera") else "") if x)
        rows.append([str(n), f["name"], f["start_recorded"] or f["start"] or "unknown",
                     f["end_recorded"] or f["end"] or ("-" if f["start"] else "unknown"),
                     f"{f['duration']:.3f} s" if f["duration"] is not None else "-", f["time_how"], notes,
                     c.bundled.get(f["key"], "not in this bundle")])
    return rows


def gap_rows(c: Continuity) -> list[list[str]]:
    rows = []
    for s in c.timeline["coverage"]:
        if s["state"] == "recorded":
            continue
        rows.append([STATES.get(s["state"], s["state"]), s.get("start_recorded") or s["start"],
                     s.get("end_recorded") or s["end"], f"{s['seconds']:.3f} s", s["reason"] or "-",
                     s["source"] + (f", camera {s['camera']}" if s.get("camera") else "")])
    return rows


def _data_uri(data: bytes) -> str:
    kind = "png" if data.startswith(b"\x89PNG") else "jpeg"
    return f"data:image/{kind};base64,{base64.b64encode(data).decode()}"


def _table(head: list[str], rows: list[list[str]]) -> str:
    e = html.escape
    return ("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{e(str(x))}</td>" for x in r) + "</tr>" for r in rows) + "</table>")


def render_html(c: Continuity) -> str:
    e = html.escape
    out = [f"<h3>Continuity statement — exhibit {e(c.exhibit.ref)}</h3>",
           _table(["Item", "Detail"], [list(r) for r in source_rows(c)]),
           "<h4>Coverage</h4>", _table(["Measure", "Value"], [list(r) for r in summary_rows(c)]),
           f"<p><img class='cov' src='{_data_uri(c.coverage_png)}' alt='Coverage timeline of {e(c.exhibit.ref)}: "
           "green recorded, red gaps, orange unexplained, grey not scheduled, pink damaged'></p>",
           "<h4>Files on the clock (times exactly as the custody record holds them)</h4>",
           _table(["#", "File", "Recording start", "Recording end", "Length", "How the time was obtained", "Notes",
                   "In this bundle"], file_rows(c))]
    gaps = gap_rows(c)
    out.append("<h4>Gaps, damage and time not covered</h4>")
    out.append(_table(["What", "From", "To", "Length", "Reason", "Record"], gaps) if gaps else
               "<p>None: the recording is continuous over its span.</p>")
    out.append("<h4>Handlers</h4>" + _table(["Name", "Role", "First action (UTC)", "Last action (UTC)", "Events",
                                             "Actions"], [[h["name"], h["role"], h["first"], h["last"],
                                                           str(h["events"]), ", ".join(h["actions"])]
                                                          for h in c.handlers]))
    out.append("<h4>Hand-offs</h4>" + _table(["#", "Time (UTC)", "What", "By", "To", "Reason", "Objects"],
                                             [[str(h["seq"]), h["time"], h["what"], h["by"], h["to"], h["reason"],
                                               ", ".join(map(str, h["objects"]))] for h in c.handoffs]))
    if c.processes:
        out.append("<h4>Processes applied (parameters and tool versions as recorded)</h4>" + _table(
            ["#", "Time (UTC)", "Process", "By", "Parameters", "Tools"],
            [[str(p["seq"]), p["time"], p["action"], p["by"], _params(p), _tools(p)] for p in c.processes]))
    for caption, data in c.sheets:
        out.append(f"<figure><img class='sheet' src='{_data_uri(data)}' alt='{e(caption)}'>"
                   f"<figcaption>{e(caption)}</figcaption></figure>")
    if c.stills:
        out.append("<h4>Stills (clock time burnt in below each picture)</h4><div>")
        out += [f"<figure class='still'><img src='{_data_uri(d)}' alt='{e(cap)}'><figcaption>{e(cap)}</figcaption>"
                "</figure>" for cap, d in c.stills]
        out.append("</div>")
    return "".join(out)


def _params(p: dict[str, Any]) -> str:
    parts = [f"RESULT: {p['result']}"] if p.get("result") else []
    parts += [f"{k}={v}" for k, v in sorted(p["parameters"].items())][:12]
    cmd = p.get("command")
    if cmd:
        cmds = cmd if cmd and isinstance(cmd[0], list) else [cmd]
        parts += ["command: " + " ".join(map(str, c)) for c in cmds if isinstance(c, list)][:4]
    return "; ".join(parts)


def _tools(p: dict[str, Any]) -> str:
    keep = ("ffmpeg", "pyav", "libav", "libavcodec", "opencv", "pillow", "custody", "custody.frames")
    return ", ".join(f"{k} {v}" for k, v in sorted(p["tools"].items()) if k in keep)


def pdf_flowables(c: Continuity, styles: Any, width: float, p: Any, table: Any, mono: Any) -> list[Any]:
    """The statement as reportlab flowables (`p` makes a paragraph, `table` a gridded table)."""
    import io

    from reportlab.lib.units import mm
    from reportlab.platypus import Image, Paragraph

    def image(data: bytes, max_w: float, max_h: float) -> Any:
        img = Image(io.BytesIO(data))
        scale = min(max_w / img.imageWidth, max_h / img.imageHeight, 1.0)
        img.drawWidth, img.drawHeight = img.imageWidth * scale, img.imageHeight * scale
        return img

    h3, h4 = styles["Heading3"], styles["Heading4"]
    story: list[Any] = [Paragraph(f"Continuity statement — exhibit {html.escape(c.exhibit.ref)}", h3),
                        table([[p(k), p(v)] for k, v in [("Item", "Detail"), *source_rows(c)]],
                              [45 * mm, width - 45 * mm]),
                        Paragraph("Coverage", h4),
                        table([[p(k), p(v)] for k, v in [("Measure", "Value"), *summary_rows(c)]],
                              [45 * mm, width - 45 * mm]),
                        image(c.coverage_png, width, 60 * mm),
                        Paragraph("Files on the clock (times exactly as the custody record holds them)", h4)]
    widths = [8 * mm, 30 * mm, 50 * mm, 50 * mm, 16 * mm, 56 * mm, 28 * mm]
    widths.append(width - sum(widths))
    story.append(table([[p(h) for h in ("#", "File", "Recording start", "Recording end", "Length",
                                        "How the time was obtained", "Notes", "In this bundle")]]
                       + [[p(r[0]), p(r[1]), p(r[2], mono), p(r[3], mono), p(r[4]), p(r[5]), p(r[6]), p(r[7], mono)]
                          for r in file_rows(c)], widths))
    story.append(Paragraph("Gaps, damage and time not covered", h4))
    gaps = gap_rows(c)
    if gaps:
        gw = [34 * mm, 56 * mm, 56 * mm, 18 * mm, 60 * mm]  # 32 Courier characters need ~49 mm
        gw.append(width - sum(gw))
        story.append(table([[p(h) for h in ("What", "From", "To", "Length", "Reason", "Record")]]
                           + [[p(r[0]), p(r[1], mono), p(r[2], mono), p(r[3]), p(r[4]), p(r[5])] for r in gaps], gw))
    else:
        story.append(p("None: the recording is continuous over its span."))
    story.append(Paragraph("Handlers", h4))
    story.append(table([[p(h) for h in ("Name", "Role", "First action (UTC)", "Last action (UTC)", "Events")]]
                       + [[p(h["name"]), p(h["role"]), p(h["first"]), p(h["last"]), p(h["events"])]
                          for h in c.handlers], [50 * mm, 30 * mm, 50 * mm, 50 * mm, width - 180 * mm]))
    story.append(Paragraph("Hand-offs", h4))
    story.append(table([[p(h) for h in ("#", "Time (UTC)", "What", "By", "To", "Reason")]]
                       + [[p(h["seq"]), p(h["time"]), p(h["what"]), p(h["by"]), p(h["to"]), p(h["reason"])]
                          for h in c.handoffs], [10 * mm, 42 * mm, 60 * mm, 45 * mm, 45 * mm, width - 202 * mm]))
    if c.processes:
        story.append(Paragraph("Processes applied (parameters and tool versions as recorded)", h4))
        story.append(table([[p(h) for h in ("#", "Time (UTC)", "Process", "Parameters", "Tools")]]
                           + [[p(x["seq"]), p(x["time"]), p(x["action"]), p(_params(x), mono), p(_tools(x))]
                              for x in c.processes], [10 * mm, 40 * mm, 32 * mm, width - 142 * mm, 60 * mm]))
    for caption, data in c.sheets:
        story += [image(data, width, 150 * mm), p(caption)]
    if c.stills:
        story.append(Paragraph("Stills (clock time burnt in below each picture)", h4))
        for caption, data in c.stills:
            story += [image(data, 120 * mm, 90 * mm), p(caption)]
    return story
