"""The bundle format, shared by the builder and the offline verifier: names, schema, safe path parts.

Defined once so the two sides cannot drift apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BAG_VERSION = "1.0"
BUNDLE_SCHEMA = "custody.bundle/1"
INDEX_NAME = "data/bundle.json"
MANIFEST = "manifest-sha256.txt"
TAGMANIFEST = "tagmanifest-sha256.txt"
REPORTS = ("data/report/report.html", "data/report/report.pdf")
# signed completeness (issue 15): tag files at the bag's root, and the payload's transparency material
STATEMENT = "custody-statement.json"
FILE_LIST = "custody-files.txt"
CASE_LOG_DIR = "data/case/log/"
TRANSPARENCY_DIR = "data/transparency/"
TREEHEAD = "data/transparency/treehead.json"
TREEHEAD_TOKEN = "data/transparency/treehead.tsr"  # noqa: S105 - a file name, not a secret
PROOFS = "data/transparency/proofs.json"
ANCHORS = "data/transparency/anchors.json"
CONSISTENCY = "data/transparency/consistency.json"
CHECKER = "data/transparency/check_bundle.py"
KEY_CHANGES_DIR = "data/keys/changes/"
CHUNK = 4 * 1024 * 1024
# Thumbnails and contact sheets are also drawn in the report, so they are kept in memory while copied:
# bounded per image, per exhibit and in total, so a thousand stills cannot blow the memory budget.
THUMB_MAX = 2 * 1024 * 1024
THUMB_KINDS = ("thumbnail", "thumb", "contact_sheet", "contact-sheet", "contactsheet")
THUMB_BUDGET = 48 * 1024 * 1024
#: (label, bytes advanced), called from the copy loop so a CLI can draw progress
Progress = Callable[[str, int], None]
#: (phase, total bytes of the phase), called when a phase starts
Plan = Callable[[str, int], None]

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_part(text: str, max_len: int = 100) -> str:
    """A path component that needs no escaping in manifests, zip, shells or `sha256sum -c`."""
    out = _SAFE.sub("_", text).strip("._") or "unnamed"
    return out[:max_len]


def tag_value(text: str) -> str:
    """bag-info.txt values are single lines of printable text."""
    return "".join(c if c.isprintable() else " " for c in str(text)).strip()


@dataclass
class BundleFile:
    """One payload file and the custody record it must match."""

    path: str
    role: str
    sha256: str
    size: int
    bucket: str | None = None
    key: str | None = None
    version_id: str | None = None
    event_seq: int | None = None
    kind: str | None = None
    original_name: str | None = None
    status: str | None = None
    working_copy: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}
