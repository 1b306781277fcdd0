"""The decoder's log lines, per chunk: which are the file's problems and which a seek caused by itself."""

from __future__ import annotations

from collections.abc import Iterator

import av.logging

from pipeline.frames.probe import clean_log_line

# PyAV forwards libav's log lines only while a level is set; per-thread Capture then attributes them to the
# chunk that caused them. Repeat-suppression is process-wide state, so it is off to keep warnings per chunk
# independent of what other threads logged.
av.logging.set_level(av.logging.WARNING)
av.logging.set_skip_repeated(False)

LEVELS = {av.logging.PANIC: "panic", av.logging.FATAL: "fatal", av.logging.ERROR: "error",
          av.logging.WARNING: "warning"}
# H.264 after a seek to a keyframe that is not an IDR (open GOP): the first pictures' memory-management commands
# name pictures from before the keyframe, which this decoder never saw. Nothing is decoded wrongly (a damaged
# picture is flagged corrupt, which is checked separately).
SEEK_NOISE = ("mmco: unref short failure", "mmco: unref long failure")
MAX_PROBLEMS = 20

Log = list[tuple[int, str, str]]  # (level, logger name, message), as av.logging.Capture collects them


def leading(seek_pts: int | None, pts: int | None) -> bool:
    """A picture shown before the keyframe a decoder was seeked to but sent after it (open GOP): it refers to the
    GOP before, which this decoder never saw, so its errors and concealment say nothing about the file. It
    belongs to the previous GOP's chunk, which decodes it with its references."""
    return seek_pts is not None and pts is not None and pts < seek_pts


def seek_noise(logs: Log, since: int, seek_pts: int | None, pkt_pts: int | None) -> Iterator[int]:
    """Indices of the log lines from `since` on (those of one packet) that a seek to `seek_pts` caused by
    itself, not damage: all those of a `leading` picture, and SEEK_NOISE."""
    if seek_pts is None:
        return
    lead = leading(seek_pts, pkt_pts)
    for i in range(since, len(logs)):
        if lead or any(m in logs[i][2] for m in SEEK_NOISE):
            yield i


def summarise(logs: Log, noise: set[int] | frozenset[int] = frozenset()) -> list[str]:
    """The chunk's problems: warnings and worse, less the seek's noise, sorted (log interleaving is not part of
    the evidence) and capped."""
    out = set()
    for i, (level, name, message) in enumerate(logs):
        tag = LEVELS.get(level)
        if i in noise or tag is None or "deprecated pixel format" in message:
            continue
        out.add(clean_log_line(f"[{name}] [{tag}] {message}"))
    return sorted(out)[:MAX_PROBLEMS]
