"""Flow `prepare_review`: make each new footage original of an exhibit ready for review.

1. Read the exhibit's custody chain and refuse if it does not verify.
2. For each footage original without a review copy or activity index: fetch it once, SHA-256 checked
   at the hand-off; make the browser-playable working copy (stream copy or transcode) and the
   activity index; store both as derived objects and record their events.

Camera exhibits can run it after each drain (a camera segment is ready for review a few seconds after
it is stored); it is idempotent, so a schedule every minute costs one chain read when nothing is new.
All logic is in `pipeline.review.prepare`, shared with `custody review prepare` and the API.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger


@flow(name="prepare_review", log_prints=True)
def prepare_review(case_ref: str, exhibit_ref: str, actor: str = "prefect",
                   want: tuple[str, ...] = ("copy", "activity")) -> list[dict[str, Any]]:
    """Review copies and activity indexes for every footage original of one exhibit that lacks them."""
    from pipeline.custody.actor import Actor
    from pipeline.evidence import Evidence
    from pipeline.review.prepare import prepare_exhibit

    ev = Evidence()
    case, exhibit = ev.get(case_ref, exhibit_ref)
    done = prepare_exhibit(ev, case, exhibit, actor=Actor(actor, "examiner"), want=tuple(want))
    ev.flush()  # the preparation events reach the transparency log as the flow ends
    get_run_logger().info("prepared %d original(s) of %s", len(done), exhibit.ref)
    return [p.as_dict() for p in done]
