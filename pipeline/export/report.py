"""The human-readable part of a bundle: one report in HTML and PDF.

A recipient (prosecutor, defence expert, court) reads this before any tool:
case summary, then per exhibit its continuity statement (sources and seizure,
every file on the clock with how its time is known, gaps, coverage, handlers,
hand-offs, processes, stills and contact sheets: `statement.py`), the hash of
every file and the custody timeline. The HTML is for screens, the PDF
(reportlab) for print and disclosure schedules; both say the same thing from
the same data.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape as xml_escape

from pipeline.custody.catalog import Exhibit

MAX_THUMBS = 12  # per exhibit


@dataclass
class ReportData:
    """Everything the report shows; `exhibits` = (exhibit, events, files, thumbnails)."""

    meta: dict[str, Any]
    exhibits: list[tuple[Exhibit, list[dict[str, Any]], list[Any], list[tuple[str, str, bytes]]]]
    continuity: list[Any] = field(default_factory=list)  # review.continuity.Continuity, one per exhibit

    def statement(self, exhibit: Exhibit) -> Any:
        return next((c for c in self.continuity if c.exhibit.id == exhibit.id), None)


def _summary_rows(meta: dict[str, Any]) -> list[tuple[str, str]]:
    actor = meta.get("prepared_by") or {}
    return [
        ("Case reference", meta["case"]["ref"]),
        ("Case id", meta["case"]["id"]),
        ("Bundle id", meta["bundle_id"]),
        ("Prepared by", f"{actor.get('name', '')} ({actor.get('role', '')})"),
        ("Prepared at (UTC)", meta["created"]),
        ("Recipient", meta.get("recipient") or "(not stated)"),
        ("Reason", meta.get("reason") or "(not stated)"),
        ("Content", "WORKING COPIES (byte-identical copies of the originals)" if meta.get("working_copies")
         else "Originals, byte for byte"),
        ("Derived material", meta.get("derived_selection") or "every derived object"),
        ("Times", "UTC throughout; recorded values are quoted exactly as the custody events hold them"),
        ("Signing key id(s)", ", ".join(meta.get("signing_key_ids", []))),
        ("Exhibits", ", ".join(x["ref"] for x in meta["exhibits"])),
    ]


def _actor(ev: dict[str, Any]) -> str:
    a = ev.get("actor") or {}
    return f"{a.get('name', '')} ({a.get('role', '')})"


def _event_note(ev: dict[str, Any]) -> str:
    objs = ev.get("objects") or []
    parts = [f"{o.get('role')}: {o.get('original_name') or o.get('key', '')}" for o in objs[:3]]
    if len(objs) > 3:
        parts.append(f"+{len(objs) - 3} more")
    return "; ".join(parts)


# ---- HTML ---------------------------------------------------------------------
def render_html(rd: ReportData) -> bytes:
    """Self-describing HTML; thumbnails link to the files inside the bag (relative paths)."""
    e = html.escape
    meta = rd.meta
    out = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
           f"<title>Evidence bundle {e(meta['case']['ref'])}</title><style>",
           "body{font-family:sans-serif;margin:2em;color:#111}table{border-collapse:collapse;margin:.5em 0}",
           "td,th{border:1px solid #999;padding:2px 6px;font-size:12px;text-align:left;vertical-align:top}",
           ".h{font-family:monospace;font-size:11px;word-break:break-all}img{max-width:240px;margin:4px}",
           "img.cov,img.sheet{max-width:100%}figure.still{display:inline-block;margin:4px}figure.still img"
           "{max-width:480px}",
           "</style></head><body>",
           f"<h1>Evidence bundle — case {e(meta['case']['ref'])}</h1>", "<h2>Summary</h2><table>"]
    out += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _summary_rows(meta)]
    out.append("</table><p>Check this bundle with <code>bagit.py --validate</code> or <code>sha256sum -c "
               "manifest-sha256.txt</code> (see README.txt), and compare the signing key id with the sender "
               "by a separate channel.</p>")
    out.append("<h2>Exhibits</h2><table><tr><th>Exhibit</th><th>Officer</th><th>Description</th><th>Events</th>"
               "<th>Last event hash</th></tr>")
    for x in meta["exhibits"]:
        out.append(f"<tr><td>{e(x['ref'])}</td><td>{e(x['officer'])}</td><td>{e(x.get('description', ''))}</td>"
                   f"<td>{x['chain']['length']}</td><td class='h'>{e(x['chain']['head'])}</td></tr>")
    out.append("</table>")
    for exhibit, events, files, thumbs in rd.exhibits:
        out.append(f"<h2>Exhibit {e(exhibit.ref)}</h2>")
        if (st := rd.statement(exhibit)) is not None:
            from pipeline.export.continuity import render_html as statement_html

            out.append(statement_html(st))
        out.append("<h3>Files and SHA-256</h3><table><tr><th>Role</th>"
                   "<th>File in bundle</th><th>Original name</th><th>Bytes</th><th>SHA-256</th></tr>")
        for f in files:
            if f.role in ("original", "derived"):
                role = "working copy" if f.working_copy else (f.kind or f.role if f.role == "derived" else f.role)
                out.append(f"<tr><td>{e(role)}</td><td class='h'>{e(f.path)}</td><td>{e(f.original_name or '')}"
                           f"</td><td>{f.size}</td><td class='h'>{e(f.sha256)}</td></tr>")
        out.append("</table><h3>Custody timeline</h3><table><tr><th>#</th><th>Time (UTC)</th><th>Action</th>"
                   "<th>By</th><th>Objects</th></tr>")
        for ev in events:
            out.append(f"<tr><td>{ev['seq']}</td><td>{e(ev['time'])}</td><td>{e(ev['action'])}</td>"
                       f"<td>{e(_actor(ev))}</td><td>{e(_event_note(ev))}</td></tr>")
        out.append("</table>")
        if thumbs:
            out.append("<h3>Thumbnails</h3><div>")
            for label, path, _data in thumbs[:MAX_THUMBS]:
                out.append(f"<figure style='display:inline-block'><img src='../../{e(path)}' alt='{e(label)}'>"
                           f"<figcaption>{e(label)}</figcaption></figure>")
            out.append("</div>")
    out.append("</body></html>\n")
    return "".join(out).encode("utf-8")


# ---- PDF ----------------------------------------------------------------------
def render_pdf(rd: ReportData) -> bytes:
    """The same report as a paginated PDF."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Image, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=7, leading=8.5)
    mono = styles["BodyText"].clone("mono", fontName="Courier", fontSize=6.5, leading=8)
    meta = rd.meta

    def p(text: Any, style: Any = small) -> Paragraph:
        return Paragraph(xml_escape(str(text)), style)

    def table(rows: list[list[Any]], widths: list[float]) -> Table:
        t = Table(rows, colWidths=widths, repeatRows=1)
        t.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                               ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dddddd")),
                               ("VALIGN", (0, 0), (-1, -1), "TOP")]))
        return t

    buf = io.BytesIO()
    page = landscape(A4)
    doc = SimpleDocTemplate(buf, pagesize=page, leftMargin=12 * mm, rightMargin=12 * mm, topMargin=12 * mm,
                            bottomMargin=12 * mm, title=f"Evidence bundle {meta['case']['ref']}",
                            author=str((meta.get("prepared_by") or {}).get("name", "")))
    w = page[0] - 24 * mm
    story: list[Any] = [Paragraph(xml_escape(f"Evidence bundle — case {meta['case']['ref']}"), styles["Title"]),
                        Paragraph("Summary", styles["Heading2"])]
    story.append(table([[p("Field"), p("Value")]] + [[p(k), p(v)] for k, v in _summary_rows(meta)],
                       [45 * mm, w - 45 * mm]))
    story.append(Spacer(1, 4 * mm))
    story.append(p("Check this bundle with bagit.py --validate or sha256sum -c manifest-sha256.txt (see README.txt), "
                   "and compare the signing key id with the sender by a separate channel.", styles["BodyText"]))
    story.append(Paragraph("Exhibits", styles["Heading2"]))
    rows = [[p("Exhibit"), p("Officer"), p("Description"), p("Events"), p("Last event hash")]]
    rows += [[p(x["ref"]), p(x["officer"]), p(x.get("description", "")), p(x["chain"]["length"]),
              p(x["chain"]["head"], mono)] for x in meta["exhibits"]]
    story.append(table(rows, [30 * mm, 45 * mm, 70 * mm, 15 * mm, w - 160 * mm]))
    for exhibit, events, files, thumbs in rd.exhibits:
        story.append(Paragraph(xml_escape(f"Exhibit {exhibit.ref}"), styles["Heading2"]))
        if (st := rd.statement(exhibit)) is not None:
            from pipeline.export.continuity import pdf_flowables

            story += pdf_flowables(st, styles, w, p, table, mono)
        story.append(Paragraph("Files and SHA-256", styles["Heading3"]))
        rows = [[p("Role"), p("File in bundle / original name"), p("Bytes"), p("SHA-256")]]
        for f in files:
            if f.role in ("original", "derived"):
                role = "working copy" if f.working_copy else (f.kind or f.role if f.role == "derived" else f.role)
                rows.append([p(role), p(f"{f.path}\n{f.original_name or ''}", mono), p(f.size), p(f.sha256, mono)])
        story.append(table(rows, [25 * mm, w - 25 * mm - 25 * mm - 95 * mm, 25 * mm, 95 * mm]))
        story.append(Paragraph("Custody timeline", styles["Heading3"]))
        rows = [[p("#"), p("Time (UTC)"), p("Action"), p("By"), p("Objects")]]
        rows += [[p(ev["seq"]), p(ev["time"]), p(ev["action"]), p(_actor(ev)), p(_event_note(ev))] for ev in events]
        story.append(table(rows, [10 * mm, 42 * mm, 40 * mm, 45 * mm, w - 137 * mm]))
        if thumbs:
            story.append(Paragraph("Thumbnails", styles["Heading3"]))
            cells = []
            for label, _path, data in thumbs[:MAX_THUMBS]:
                try:
                    img = Image(io.BytesIO(data))
                    scale = min(60 * mm / img.imageWidth, 45 * mm / img.imageHeight, 1.0)
                    img.drawWidth, img.drawHeight = img.imageWidth * scale, img.imageHeight * scale
                    cells.append([img, p(label)])
                except Exception:  # noqa: BLE001 - an undecodable image must not stop the report
                    cells.append([p("(image not renderable)"), p(label)])
            ncol = min(4, len(cells))
            grid: list[list[Any]] = []
            for i in range(0, len(cells), ncol):
                row: list[Any] = [Table([[c[0]], [c[1]]]) for c in cells[i:i + ncol]]
                grid.append(row + [""] * (ncol - len(row)))
            story.append(Table(grid, colWidths=[w / 4] * ncol))
    doc.build(story)
    return buf.getvalue()
