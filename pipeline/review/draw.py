"""Pictures for people: the coverage timeline, clock-time contact sheets and stills with the time burnt in.

Drawn with Pillow at fixed sizes and its built-in font, so the same record always gives the same picture.
These are illustrations of the record (the report's figures), never evidence themselves: every label
comes from the custody events, and the stills' own pixels are only scaled.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from pipeline.review.timesource import parse_instant

COLOURS = {"recorded": (46, 125, 50), "gap": (198, 40, 40), "unexplained": (239, 108, 0),
           "not_scheduled": (158, 158, 158), "missed": (123, 31, 162), "damaged": (233, 30, 99)}
DRAW_ORDER = {"recorded": 1, "damaged": 2}  # gaps first, footage over them, damage over the footage
OTHER = (96, 125, 139)
LABEL_W = 170
TICKS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def clock_label(t: datetime | None, with_date: bool = True) -> str:
    if t is None:
        return "time unknown"
    t = t.astimezone(UTC)
    ms = f"{t.microsecond // 1000:03d}"
    return (t.strftime("%Y-%m-%d %H:%M:%S.") if with_date else t.strftime("%H:%M:%S.")) + ms + " UTC"


def _tick_step(seconds: float, width: int) -> int:
    want = seconds / max(1, width // 110)
    return next((s for s in TICKS if s >= want), TICKS[-1])


def coverage_png(lanes: list[tuple[str, list[dict[str, Any]]]], width: int = 1600) -> bytes:
    """One lane per exhibit/camera: coverage spans from `build_timeline`, on one UTC axis with a legend."""
    spans = [(parse_instant(s["start"]), parse_instant(s["end"]), s["state"]) for _, ss in lanes for s in ss]
    spans = [(a, b, st) for a, b, st in spans if a and b]
    lane_h, top = 34, 40
    height = top + lane_h * max(1, len(lanes)) + 70
    img = Image.new("RGB", (width, height), (255, 255, 255))
    d = ImageDraw.Draw(img)
    f, fs = font(13), font(11)
    if not spans:
        d.text((10, 10), "No footage with a known recording time.", fill=(0, 0, 0), font=f)
        return _png(img)
    t0 = min(a for a, _, _ in spans)
    t1 = max(b for _, b, _ in spans)
    total = max((t1 - t0).total_seconds(), 1.0)
    plot_w = width - LABEL_W - 20

    def x(t: datetime) -> float:
        return LABEL_W + (t - t0).total_seconds() / total * plot_w

    d.text((10, 8), f"Coverage {clock_label(t0)} to {clock_label(t1)} ({total / 3600:.2f} h)", fill=(0, 0, 0), font=f)
    for i, (name, ss) in enumerate(lanes):
        y = top + i * lane_h
        d.text((10, y + 8), name[:24], fill=(0, 0, 0), font=f)
        d.rectangle([LABEL_W, y + 4, LABEL_W + plot_w, y + lane_h - 6], outline=(200, 200, 200), fill=(245, 245, 245))
        for s in sorted(ss, key=lambda s: DRAW_ORDER.get(s["state"], 0)):
            a, b = parse_instant(s["start"]), parse_instant(s["end"])
            if a is None or b is None:
                continue
            xa, xb = x(a), max(x(b), x(a) + 1)
            d.rectangle([xa, y + 4, xb, y + lane_h - 6], fill=COLOURS.get(s["state"], OTHER))
    axis_y = top + lane_h * max(1, len(lanes)) + 2
    d.line([LABEL_W, axis_y, LABEL_W + plot_w, axis_y], fill=(0, 0, 0))
    step = _tick_step(total, plot_w)
    first = t0.replace(microsecond=0) + timedelta(seconds=(-t0.replace(microsecond=0).timestamp()) % step)
    t = first
    multi_day = t0.date() != t1.date()
    while t <= t1:
        xt = x(t)
        d.line([xt, axis_y, xt, axis_y + 5], fill=(0, 0, 0))
        d.text((xt - 28, axis_y + 7), t.strftime("%m-%d %H:%M" if multi_day else "%H:%M:%S"), fill=(0, 0, 0),
               font=fs)
        t += timedelta(seconds=step)
    lx = LABEL_W
    for state in ("recorded", "gap", "unexplained", "not_scheduled", "missed", "damaged"):
        d.rectangle([lx, height - 24, lx + 14, height - 10], fill=COLOURS[state])
        label = state.replace("_", " ")
        d.text((lx + 18, height - 25), label, fill=(0, 0, 0), font=fs)
        lx += 40 + int(d.textlength(label, font=fs))
    return _png(img)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def contact_sheet_png(title: str, cells: list[tuple[bytes, list[str]]], columns: int = 6,
                      cell_w: int = 200) -> bytes:
    """A page of (image bytes, label lines), in the order given (the caller sorts by clock time)."""
    f, fs = font(14), font(11)
    label_h = 16 * 2 + 6
    imgs = []
    for data, lines in cells:
        try:
            im = Image.open(io.BytesIO(data)).convert("RGB")
        except Exception:  # noqa: BLE001 - an unreadable thumbnail becomes a labelled blank cell
            im = Image.new("RGB", (cell_w, cell_w * 9 // 16), (60, 60, 60))
        im.thumbnail((cell_w, cell_w))
        imgs.append((im, lines))
    cell_h = max((im.height for im, _ in imgs), default=cell_w * 9 // 16) + label_h
    rows = max(1, (len(imgs) + columns - 1) // columns)
    sheet = Image.new("RGB", (columns * (cell_w + 8) + 8, 34 + rows * (cell_h + 8)), (24, 24, 24))
    d = ImageDraw.Draw(sheet)
    d.text((8, 8), title, fill=(255, 255, 255), font=f)
    for k, (im, lines) in enumerate(imgs):
        r, c = divmod(k, columns)
        x0, y0 = 8 + c * (cell_w + 8), 34 + r * (cell_h + 8)
        sheet.paste(im, (x0, y0))
        for j, line in enumerate(lines[:2]):
            d.text((x0 + 2, y0 + im.height + 3 + j * 16), line[:34], fill=(255, 255, 255), font=fs)
    return _png(sheet)


def burn_in(data: bytes, lines: list[str], width: int = 640) -> bytes:
    """A still scaled to `width` with a caption bar below it (the still's own pixels are not painted over).

    JPEG (quality 90): an illustration for the report; the lossless still itself is in the bundle.
    """
    im = Image.open(io.BytesIO(data)).convert("RGB")
    scale = min(1.0, width / im.width)
    im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.LANCZOS)
    bar = 20 * len(lines) + 8
    f = font(15)
    # a small still keeps its size, but the caption is never cut off: the bar is as wide as its longest line
    text_w = max((ImageDraw.Draw(im).textlength(line, font=f) for line in lines), default=0)
    out = Image.new("RGB", (max(im.width, int(text_w) + 12), im.height + bar), (0, 0, 0))
    out.paste(im, (0, 0))
    d = ImageDraw.Draw(out)
    for j, line in enumerate(lines):
        d.text((6, im.height + 4 + j * 20), line, fill=(255, 255, 255), font=f)
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=90)
    return buf.getvalue()
