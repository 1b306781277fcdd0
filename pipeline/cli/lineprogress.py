"""Progress for a log rather than a terminal: plain lines, every few seconds and once at the end.

rich's live bar draws nothing until it stops when stderr is not a terminal (a cron job, a Prefect or CI
log, a pipe), so a two-hour upload would say nothing for two hours; and importing it costs ~20 ms a
command. `progress_bar` picks this instead whenever stderr is not a TTY. Same calls as rich's Progress,
the ones the CLI uses: add_task, advance, update, reset, remove_task.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

PERIOD_S = 5.0


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float = 0.0
    started: float = field(default_factory=time.monotonic)


class LineProgress:
    def __init__(self, period_s: float = PERIOD_S) -> None:
        self.period_s = period_s
        self._tasks: dict[int, _Task] = {}
        self._next_id = 0
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._print(list(self._tasks.values()))

    def add_task(self, description: str, total: float | None = None, **_: Any) -> int:
        with self._lock:
            self._next_id += 1
            self._tasks[self._next_id] = _Task(description, total)
            return self._next_id

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(self, task_id: int, *, advance: float | None = None, completed: float | None = None,
               total: float | None = None, description: str | None = None, **_: Any) -> None:
        with self._lock:
            t = self._tasks.get(task_id)
            if t is None:
                return
            if description is not None:
                t.description = description
            if total is not None:
                t.total = total
            if completed is not None:
                t.completed = completed
            if advance:
                t.completed += advance
            now = time.monotonic()
            if now - self._last >= self.period_s:
                self._last = now
                self._print(list(self._tasks.values()))

    def reset(self, task_id: int, *, total: float | None = None, description: str | None = None, **_: Any) -> None:
        with self._lock:
            t = self._tasks.get(task_id)
            if t is not None:
                self._tasks[task_id] = _Task(description or t.description, total)

    def remove_task(self, task_id: int) -> None:
        with self._lock:
            self._tasks.pop(task_id, None)

    @staticmethod
    def _print(tasks: list[_Task]) -> None:
        for t in tasks:
            sys.stderr.write(line(t.description, t.completed, t.total, time.monotonic() - t.started) + "\n")
        sys.stderr.flush()


def line(description: str, done: float, total: float | None, seconds: float) -> str:
    """`card.bin: 512.0/2048.0 MB (25 %), 152 MB/s`, from bytes done, the total (if known) and seconds so far."""
    mb = done / 1e6
    rate = f", {mb / seconds:.0f} MB/s" if seconds > 0.5 else ""
    if total:
        return f"{description}: {mb:.1f}/{total / 1e6:.1f} MB ({done / total * 100:.0f} %){rate}"
    return f"{description}: {mb:.1f} MB{rate}"
