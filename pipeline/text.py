"""Text that people type into the record: one cleaning rule for every human-entered field.

Officer names, descriptions, case titles, seizure location and device, bundle recipient and reason,
notes and clock notes end up in signed custody events, reports and pages read in court. Invisible
characters there are an attack, not content: a right-to-left override (U+202E) makes
"DC Smith\u202e1/BJ" display as something else, zero-width characters make two different names
look identical, and control characters forge line breaks in reports and logs.

`clean_human_text` removes every character that renders as nothing: Unicode format characters
(category Cf: bidi embeddings, overrides and isolates, zero-width joiners and spaces, the BOM, soft
hyphen), C0 and C1 controls (Cc), surrogates, private-use and unassigned code points, and line or
paragraph separators. What is left is what the person saw on their screen, so stripping loses
nothing they meant; the text is also NFC-normalised and its runs of white space collapsed.
"""

from __future__ import annotations

import unicodedata

from pipeline.errors import UsageError

_DROP = frozenset({"Cf", "Cc", "Cs", "Co", "Cn", "Zl", "Zp"})


def strip_invisible(value: str) -> str:
    """The visible text: invisible format and control characters removed, white space collapsed, NFC."""
    kept = "".join(" " if c in "\t\n\r\v\f" else c for c in unicodedata.normalize("NFC", value)
                   if c in "\t\n\r\v\f" or unicodedata.category(c) not in _DROP)
    return " ".join(kept.split())


def clean_human_text(value: str | None, what: str, max_len: int = 200, *, required: bool = False) -> str:
    """`value` cleaned for the record; UsageError when it is too long, or empty but required."""
    v = strip_invisible(value or "")
    if required and not v:
        raise UsageError(f"{what} must not be empty (invisible characters do not count)")
    if len(v) > max_len:
        raise UsageError(f"{what} is longer than {max_len} characters")
    return v


def escape_invisible(value: str) -> str:
    """A name exactly as found, made visible: invisible characters become `\\uXXXX`, undecodable bytes `\\xNN`.

    Visible text (backslashes included) is kept as it is, so an ordinary name is recorded unchanged.

    For recording what a seized card called a file (its bytes matter to an examiner) without letting
    those bytes steer how the record is displayed.
    """
    out = []
    for c in value:
        o = ord(c)
        if 0xDC80 <= o <= 0xDCFF:  # os.fsdecode's surrogateescape of an undecodable byte
            out.append(f"\\x{o - 0xDC00:02x}")
        elif unicodedata.category(c) in _DROP:
            out.append(f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}")
        else:
            out.append(c)
    return "".join(out)
