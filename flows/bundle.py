"""Prefect flow `build_bundle`: the same bundle build, schedulable and observable.

Kept thin on purpose: all logic (streaming, integrity checks, custody events)
lives in `pipeline.export.bundle` so the CLI, API and flow can't drift apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow


@flow(name="build-bundle", log_prints=True)
def build_bundle(case: str, out: str, exhibits: list[str] | None = None, working_copies: bool = False,
                 recipient: str = "", reason: str = "", actor: str | None = None,
                 derived: str = "review") -> dict[str, Any]:
    """Build, lock and record an evidence bundle; returns its summary (hash, location, events). `derived`:
    review (the default), none or all, as `custody bundle --derived`."""
    from pipeline.custody.actor import Actor
    from pipeline.evidence import Evidence
    from pipeline.export.bundle import build_bundle as _build
    from pipeline.review import selection

    keep, chosen = selection.cli_choice(derived)
    ev = Evidence()
    who = Actor(actor) if actor else Actor.default(ev.settings)
    res = _build(ev, case, exhibits, Path(out), actor=who, working_copies=working_copies, recipient=recipient,
                 reason=reason, keep=keep, selection=chosen)
    print(f"bundle {res.path} sha256 {res.sha256} stored at {res.bucket}/{res.key}")
    return res.as_dict()
