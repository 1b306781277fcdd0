"""Top-level ISO-BMFF boxes of a damaged file: where the media data is, what else survived.

A camera that lost power leaves `ftyp`, maybe `free`/`wide`, and an `mdat` whose size field is 0, a
placeholder, or (when the file was later cut) larger than the file. We trust a box header only while it
looks like one, and clip the mdat to the bytes that exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

_FOURCC = re.compile(rb"[a-zA-Z0-9 ]{4}")
_MDAT_HEAD_SCAN = 1 << 20  # when the box walk breaks, look this far for an 'mdat' fourcc


@dataclass(frozen=True)
class MediaData:
    """One mdat payload, as a byte range of the damaged file."""

    start: int
    end: int  # clipped to the file size
    declared_end: int | None  # what the box header claims (None when size is 0: "to end of file")


@dataclass(frozen=True)
class Layout:
    file_size: int
    boxes: list[tuple[str, int, int]] = field(default_factory=list)  # (type, offset, declared size)
    mdats: list[MediaData] = field(default_factory=list)

    @property
    def has_moov(self) -> bool:
        return any(t == "moov" for t, _, _ in self.boxes)

    @property
    def fragmented(self) -> bool:
        return any(t == "moof" for t, _, _ in self.boxes)


def read_layout(path: Path) -> Layout:
    """Walk the top-level boxes; fall back to a fourcc search when the walk hits garbage before any mdat."""
    size = path.stat().st_size
    boxes: list[tuple[str, int, int]] = []
    mdats: list[MediaData] = []
    with path.open("rb") as f:
        off = 0
        while off + 8 <= size:
            f.seek(off)
            head = f.read(16)
            box_size, fourcc = int.from_bytes(head[:4], "big"), head[4:8]
            if not _FOURCC.fullmatch(fourcc):
                break
            header = 8
            if box_size == 1:
                if len(head) < 16:
                    break
                box_size, header = int.from_bytes(head[8:16], "big"), 16
            elif box_size == 0:
                box_size = size - off
            if box_size < header:
                break
            name = fourcc.decode("ascii")
            boxes.append((name, off, box_size))
            if name == "mdat":
                declared = None if int.from_bytes(head[:4], "big") == 0 else off + box_size
                mdats.append(MediaData(off + header, min(off + box_size, size), declared))
            off += box_size
        if not mdats:
            f.seek(0)
            head = f.read(min(size, _MDAT_HEAD_SCAN))
            at = head.find(b"mdat")
            if at >= 4:
                mdats.append(MediaData(at + 4, size, None))
                boxes.append(("mdat", at - 4, size - at + 4))
    return Layout(size, boxes, mdats)
