"""Flow `extract_frames`: the procedure an examiner would describe.

1. Read the exhibit's custody chain and refuse if it does not verify.
2. For each original that may be footage: fetch it, checking its SHA-256
   against the custody record at the hand-off.
3. Extract stills with the recorded parameters, store each as a derived
   object pointing at its source while extraction runs, and record a
   `frames_extracted` event once all are stored.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task

from pipeline.custody.actor import Actor
from pipeline.evidence import Evidence
from pipeline.frames.derive import extract_object, footage_objects


@task(name="extract-one-original", retries=1, retry_delay_seconds=5)
def extract_one(case_ref: str, exhibit_ref: str, key: str, version_id: str | None, params: dict[str, Any],
                actor: str, workers: int | None, dask_address: str | None) -> dict[str, Any]:
    from pipeline.frames import ExtractParams

    ev = Evidence()
    case, exhibit = ev.get(case_ref, exhibit_ref)
    objs, events = footage_objects(ev, exhibit)
    obj = next(o for o in objs if o.key == key and o.version_id == version_id)
    event = extract_object(ev, case, exhibit, obj, ExtractParams(**params), actor=Actor(actor, "examiner"),
                           workers=workers, dask=dask_address, events=events)
    ev.flush()  # the extraction event reaches the transparency log as the task ends
    return {"seq": event["seq"], "action": event["action"], "stills": event["details"].get("stills", 0)}


@flow(name="extract_frames", log_prints=True)
def extract_frames_flow(case_ref: str, exhibit_ref: str, params: dict[str, Any], actor: str = "prefect",
                        workers: int | None = None, dask_address: str | None = None) -> list[dict[str, Any]]:
    """Extract stills from every footage original of one exhibit."""
    logger = get_run_logger()
    ev = Evidence()
    _, exhibit = ev.get(case_ref, exhibit_ref)
    objs, _ = footage_objects(ev, exhibit)
    logger.info("exhibit %s: %d original(s) to extract from", exhibit_ref, len(objs))
    results = []
    for o in objs:  # sequential: each extraction already uses every core
        results.append(extract_one(case_ref, exhibit_ref, o.key, o.version_id, params, actor, workers, dask_address))
    return results
