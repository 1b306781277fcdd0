"""When to try a lost camera again: often at first, because most outages are short, then capped.

Footage after a camera comes back is lost until the next attempt connects, so in the first `fast_window`
seconds of an outage attempts start every `interval` (0.5 s: a returning camera is back on tape within about
0.5 s + ~0.2 s to connect). After that the wait doubles up to `cap` (5 s), which bounds both what a long outage
costs (each attempt is an ffmpeg start, ~50 ms CPU) and what is lost when the camera finally returns.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import RecorderError


@dataclass(frozen=True)
class Backoff:
    interval: float = 0.5
    fast_window: float = 30.0
    cap: float = 5.0

    def __post_init__(self) -> None:
        if not (0 < self.interval <= self.cap) or self.fast_window < 0:
            raise RecorderError(f"backoff needs 0 < interval <= cap and fast_window >= 0, got interval="
                                f"{self.interval}, cap={self.cap}, fast_window={self.fast_window}")

    @classmethod
    def coerce(cls, value: Backoff | tuple[float, float] | None) -> Backoff:
        """Backoff, None (the default) or the older (initial, cap) tuple."""
        if value is None:
            return cls()
        if isinstance(value, Backoff):
            return value
        try:
            initial, cap = value
            return cls(interval=float(initial), cap=float(cap))
        except (TypeError, ValueError):
            raise RecorderError(f"backoff must be a Backoff or (initial, cap) in seconds, got {value!r}") from None

    def delay(self, outage_seconds: float, previous: float | None) -> float:
        """Seconds from the start of the last attempt to the start of the next (a pure function).

        `outage_seconds`: how long the camera has been gone; `previous`: the last delay returned, None for the
        first retry of this outage."""
        if outage_seconds < self.fast_window:
            return self.interval
        return min(self.cap, max(self.interval, (previous or self.interval) * 2))
