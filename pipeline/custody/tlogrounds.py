"""When transparency-log rounds run: queue markers, the background timer, the flush at the end of a command.

What a round does (claim a batch, publish tiles, entries and the head) is `TransparencyLog.integrate`; this
base class only decides when to call it, so that an append never waits for a round and a process that exits
neither leaves its last events unlogged nor cuts a round off between its claim and its head.
"""

from __future__ import annotations

import atexit
import logging
import random
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pipeline.custody.tlogformat import queue_key
from pipeline.storage import EvidenceStore

log = logging.getLogger("pipeline.custody.tlog")
# How long a process that is exiting waits for a round its timer thread has under way (claim, tiles, entries,
# head: well under a second on a working store); past it the next appender finishes the round.
EXIT_WAIT_S = 30.0
_live: weakref.WeakSet[RoundTimer] = weakref.WeakSet()


def finish_rounds() -> None:
    """At exit, or before a process stops the store it appends to: let every round under way finish, start
    none (atexit, before daemon threads are cut off)."""
    for tl in list(_live):
        tl.close()


atexit.register(finish_rounds)


class RoundTimer:
    """Markers and the timer thread of one process's transparency log; subclasses provide `integrate`."""

    def __init__(self, store: EvidenceStore, settings: Any) -> None:
        self.store = store
        self.bucket = store.buckets["custody"]
        self.settings = settings
        self._lock = threading.RLock()  # one round at a time in this process
        self._mlock = threading.Lock()  # marker bookkeeping: never held across a request or a round
        self._last_round = 0.0
        self._dirty = False  # we wrote a marker no round of ours has listed yet
        self._last_marker = 0.0
        self._marked: dict[str, float] = {}  # chain -> when we last wrote its marker
        self._unmarked: dict[str, int] = {}  # chain -> newest seq we appended that no marker covers yet
        self._timer: threading.Timer | None = None
        self._warned: set[str] = set()
        self._closing = False
        _live.add(self)

    def integrate(self, extra: Sequence[dict[str, Any]] = (), *, force: bool = False,
                  stamp: bool = False) -> Any:
        raise NotImplementedError

    def stamp_pending(self) -> bool:
        """A head this process published is not yet time-stamped (the TSA is asked at most once an interval)."""
        return False

    def stamp_due(self, at_exit: bool = False) -> bool:
        """Time to ask the TSA again (`at_exit`: this process never asked for its newest head)."""
        return False

    def _warn(self, msg: str) -> None:
        if msg not in self._warned:
            self._warned.add(msg)
            log.warning(msg)

    def submit(self, chain: str, seq: int) -> None:
        """Queue a chain head for a round; never fails the append.

        A marker names the chain, not the event: the round reads the chain's real head, so one marker covers
        every event appended before the round reads it. An appender therefore writes at most one marker per
        chain per half interval (the timer or `flush` writes one for what came after), and a busy chain costs
        about one PUT per event, not two.
        """
        now = time.monotonic()
        with self._mlock:
            fresh = now - self._marked.get(chain, -1e9) >= self.settings.tlog_interval_s / 2
            if not fresh:
                self._unmarked[chain] = max(seq, self._unmarked.get(chain, -1))
        if fresh:
            self._mark(chain, seq)
        self._schedule()  # rounds run on the timer thread: an append never waits for one

    def _mark(self, chain: str, seq: int) -> None:
        self.store.put_bytes(self.bucket, queue_key(datetime.now(UTC), chain, seq), b"",
                             content_type="application/octet-stream")
        with self._mlock:
            self._marked[chain] = self._last_marker = time.monotonic()
            self._dirty = True
            if self._unmarked.get(chain, -1) <= seq:
                self._unmarked.pop(chain, None)

    def _mark_rest(self) -> None:
        with self._mlock:
            rest = dict(self._unmarked)
        for chain, seq in rest.items():
            self._mark(chain, seq)

    def _schedule(self) -> None:
        with self._mlock:
            if self._closing:
                return
            if self._timer is not None and self._timer.is_alive():
                return
            self._timer = threading.Timer(self.settings.tlog_interval_s / 2, self._tick)
            self._timer.daemon = True
            self._timer.start()

    def _tick(self) -> None:
        """Mark what the last markers missed, run a round unless someone just did; again while work remains."""
        self._safely(self._mark_rest)
        due = self.settings.tlog_interval_s * (1 + random.random() / 2)  # noqa: S311 - jitter, not crypto
        if self._dirty and time.monotonic() - self._last_round >= due:
            self._safely(lambda: self.integrate())
        elif self.stamp_due():  # the last events of a quiet process: stamped once the interval allows, not
            self._safely(lambda: self.integrate(force=True, stamp=True))  # when the next append comes
        with self._mlock:
            self._timer = None
            again = self._dirty or bool(self._unmarked) or self.stamp_pending()
        if again:
            self._schedule()

    def _safely(self, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - background work: never take the appender down, say why
            self._warn(f"transparency log round failed (the next one retries): {type(exc).__name__}: {exc}")

    def flush(self) -> None:
        """Fold anything this process queued into the tree and time-stamp the newest head (end of a command)."""
        if self._timer is not None:
            self._timer.cancel()
        try:
            self._mark_rest()
        except Exception as exc:  # noqa: BLE001 - at exit: warn; verify will name what stayed unlogged
            self._warn(f"could not queue the last chain heads for the transparency log: {exc}")
            return
        for _ in range(5):
            if not self._dirty:
                return
            try:
                if self.integrate(force=True, stamp=True) is not None:
                    return
            except Exception as exc:  # noqa: BLE001 - at exit: warn, the next appender's round folds it in
                self._warn(f"transparency log round at exit failed (the next appender's round folds it in): "
                           f"{type(exc).__name__}: {exc}")
                return

    def close(self, timeout: float = EXIT_WAIT_S) -> None:
        """No more timer rounds; wait for one under way. A process cut off between a round's claim and its head
        leaves the newest batch unprovable until the next appender publishes it (verify names it meanwhile)."""
        with self._mlock:
            self._closing = True
            if self._timer is not None:
                self._timer.cancel()
        if self._lock.acquire(timeout=timeout):
            self._lock.release()
            if self.stamp_due(at_exit=True):  # a server stopping: its last events get their time-stamp now
                self._safely(lambda: self.integrate(force=True, stamp=True))
