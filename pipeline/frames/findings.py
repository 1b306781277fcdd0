"""The order warnings are shown in where only a few fit (a terminal, a report cell)."""

from __future__ import annotations

from collections.abc import Iterable

DECODER_LINE = "decoder: "  # a libavcodec log line passed on as a warning


def findings_first(warnings: Iterable[object]) -> list[str]:
    """Our findings (damage, truncation, missing frames) before the decoder's own log lines, each group in its
    order: the lines only back up the findings, and a reader who sees eight should see the findings."""
    return sorted((str(w) for w in warnings), key=lambda w: w.startswith(DECODER_LINE))
