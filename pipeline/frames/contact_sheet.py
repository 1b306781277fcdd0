"""Contact sheets: pages of thumbnails with the media time burnt in, for quick human review.

Pages keep memory bounded (an hour at 1 still/s is 45 pages, not one 150-megapixel image).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from pipeline.frames.pixels import write_file
from pipeline.frames.png import encode_png

LABEL_H = 18
PAD = 4


def _fmt(offset: float) -> str:
    m, s = divmod(offset, 60.0)
    h, m = divmod(int(m), 60)
    return f"{h:d}:{m:02d}:{s:06.3f}"


def build_contact_sheets(out_dir: Path, prefix: str, thumbs: Sequence[tuple[Path, float]], *, columns: int, rows: int,
                         png_level: int, png_encoder: str) -> list[str]:
    """Write `{prefix}_contact_NNN.png` pages from (thumbnail path, offset seconds); returns file names."""
    per_page = columns * rows
    names: list[str] = []
    for page_no, start in enumerate(range(0, len(thumbs), per_page)):
        page = thumbs[start:start + per_page]
        imgs = [cv2.imread(str(p), cv2.IMREAD_COLOR) for p, _ in page]
        cw = max(i.shape[1] for i in imgs)
        ch = max(i.shape[0] for i in imgs)
        n_rows = (len(page) + columns - 1) // columns
        cell_w, cell_h = cw + PAD, ch + LABEL_H + PAD
        sheet = np.full((n_rows * cell_h + PAD, min(columns, len(page)) * cell_w + PAD, 3), 24, np.uint8)
        for k, (img, (_, offset)) in enumerate(zip(imgs, page, strict=True)):
            r, c = divmod(k, columns)
            y, x = PAD + r * cell_h, PAD + c * cell_w
            sheet[y:y + img.shape[0], x:x + img.shape[1]] = img
            cv2.putText(sheet, _fmt(offset), (x + 2, y + ch + LABEL_H - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                        (255, 255, 255), 1, cv2.LINE_8)
        name = f"{prefix}_contact_{page_no:03d}.png"
        write_file(out_dir / name, encode_png(sheet, png_level, png_encoder).parts)
        names.append(name)
    return names
