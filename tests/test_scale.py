"""Beyond one machine, on one machine: Prefect server on a real PostgreSQL (Debian's binaries), a process
worker picking up deployments, and a two-worker Dask LocalCluster running frame-extraction chunks.

Proves: camera ingest and frame extraction run through deployments end to end; the stills extracted on Dask
are byte-identical (pixel and PNG hashes, every derived object) to a local in-process extraction of the same
source object; the custody events have the same shape as a local run's; `custody verify` passes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(240)

POOL = "custody-scale"


@dataclass
class ScaleStack:
    pg: Any
    api_url: str
    deployments: dict[str, str]
    dask_address: str


@pytest.fixture(scope="module")
def scale(cli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScaleStack]:  # type: ignore[no-untyped-def]
    from pipeline.capture import stop_emulator
    from pipeline.ops.scale import (
        create_process_pool,
        deploy_flows,
        local_dask,
        start_postgres,
        start_prefect_server,
        start_process_worker,
    )

    cli.run("stack", "up", "--cameras", "1", "--no-prefect")  # its own Prefect server runs on PostgreSQL
    prefect_home = tmp_path_factory.mktemp("scale") / "prefect"
    pg = start_postgres()
    services = []
    try:
        server = start_prefect_server(pg.url(), prefect_home)
        services.append(server)
        create_process_pool(server.url, POOL, prefect_home)
        services.append(start_process_worker(server.url, POOL, prefect_home, limit=1, env={
            "CUSTODY_HOME": str(cli.home), "CUSTODY_ACTOR": "pytest"}))
        names = deploy_flows(server.url, POOL, suffix=uuid.uuid4().hex[:6])
        with local_dask(2) as addr:
            yield ScaleStack(pg, server.url, names, addr)
    finally:
        for s in reversed(services):
            s.stop()
        pg.stop()
        stop_emulator(cli.home / "emulator")


def _events(evidence, case_ref: str, exhibit_ref: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    _, ex = evidence.get(case_ref, exhibit_ref)
    chain = evidence.log.read(ex.id)
    assert chain.ok, chain.findings
    return chain.events


def _shape(e: dict[str, Any]) -> tuple[Any, ...]:
    """What a segment event must have whoever ran it: action, parameter/tool names, object fields."""
    return (e["action"], sorted(e.get("parameters") or {}), sorted(e.get("tools") or {}),
            [sorted(o) for o in e.get("objects", [])])


def _frames_view(e: dict[str, Any]) -> dict[str, Any]:
    """Everything in a frames_extracted event that must not depend on where the chunks ran.

    Content credentials are signed afresh each run (new signature, run id): what must match is the bytes
    before the credential (`c2pa.unsigned_sha256`), which for a PNG are the encoder's bytes exactly.
    """
    derived = [o for o in e["objects"] if o["role"] == "derived"]

    def content(o: dict[str, Any]) -> tuple[str, int]:
        c2pa = (o.get("info") or {}).get("c2pa")
        return (c2pa["unsigned_sha256"], o["size"] - c2pa["added_bytes"]) if c2pa else (o["sha256"], o["size"])

    params = {k: v for k, v in e["parameters"].items() if k != "content_credentials"}
    return {"source": e["parameters"]["source"], "parameters": params, "tools": e["tools"],
            "details": e["details"],
            "objects": [(o["kind"], o["original_name"], *content(o)) for o in derived],
            "stills": [(o["info"]["pts"], o["info"]["pixel_sha256"], o["info"]["png_sha256"]) for o in derived
                       if o["kind"] == "still"]}


def test_ingest_and_extract_through_deployments_match_local(scale: ScaleStack, cli, evidence,  # type: ignore[no-untyped-def]
                                                            case_ref: str) -> None:
    from distributed import Client, get_task_stream

    from pipeline.capture.ingest import exhibit_ref_for, ingest_camera
    from pipeline.custody.actor import Actor
    from pipeline.frames import ExtractParams
    from pipeline.frames.derive import extract_object, footage_objects
    from pipeline.ops.scale import count_flow_runs, run_deployment_sync
    from pipeline.settings import load_settings

    t0 = time.monotonic()
    day = datetime.now(UTC)
    run_deployment_sync(scale.api_url, scale.deployments["camera_ingest"], {
        "camera_id": "cam1", "case_ref": case_ref, "duration": 6.0, "segment_seconds": 2.0, "stall_timeout": 5.0},
        timeout=150)
    exhibits = [e.ref for e in evidence.catalog.list_exhibits(evidence.catalog.get_case(case_ref))]
    assert len(exhibits) == 1 and exhibits[0] in {exhibit_ref_for("CAM1", d) for d in (day, datetime.now(UTC))}
    ex_ref = exhibits[0]  # the run's day: the day after `day` when it began just after midnight
    events = _events(evidence, case_ref, ex_ref)
    segs = [e for e in events if e["action"] == "segment_recorded"]
    assert len(segs) >= 2, [e["action"] for e in events]
    t_ingest = time.monotonic() - t0

    # the same recording procedure run locally (other case: one spool per camera, so not concurrently)
    local_case = f"{case_ref}-local"
    rep = ingest_camera(load_settings(), camera="cam1", url=cli.json("stack", "status")["cameras"]["urls"]["cam1"],
                        case_ref=local_case, duration=4, segment_seconds=2, stall_timeout=5, drain_interval=0.5)
    assert rep.pending == 0 and not rep.errors
    local_events = _events(evidence, local_case, rep.exhibit)
    assert [e["action"] for e in local_events][:1] == [e["action"] for e in events][:1]
    local_segs = [e for e in local_events if e["action"] == "segment_recorded"]
    shapes = {repr(_shape(e)) for e in segs}
    assert shapes == {repr(_shape(e)) for e in local_segs}, "segment events differ in shape"
    assert {e["parameters"]["camera"] for e in segs} == {"cam1"}

    # frame extraction through the deployment, chunks on the two-worker Dask cluster
    params = {"every_seconds": 0.5, "keyframes": True, "name_prefix": "scale"}
    t1 = time.monotonic()
    with Client(scale.dask_address) as watcher, get_task_stream(watcher) as stream:  # sees every client's tasks
        run_deployment_sync(scale.api_url, scale.deployments["extract_frames"], {
            "case_ref": case_ref, "exhibit_ref": ex_ref, "params": params, "actor": "prefect-dask", "workers": 2,
            "dask_address": scale.dask_address}, timeout=150)
    t_extract = time.monotonic() - t1
    assert len({r["worker"] for r in stream.data}) == 2, "chunks did not run on both Dask workers"
    events = _events(evidence, case_ref, ex_ref)
    on_dask = {e["parameters"]["source"]["key"]: e for e in events
               if e["action"] == "frames_extracted" and e["actor"]["name"] == "prefect-dask"}
    case, exhibit = evidence.get(case_ref, ex_ref)
    sources, _ = footage_objects(evidence, exhibit)
    assert set(on_dask) == {o.key for o in sources}, "every original extracted once on Dask"

    # the same extraction locally (in-process pool, no Dask, no Prefect), same source objects
    for obj in sources:
        local = extract_object(evidence, case, exhibit, obj, ExtractParams(**params),
                               actor=Actor("local-examiner", "examiner"), workers=2)
        a, b = _frames_view(on_dask[obj.key]), _frames_view(local)
        assert a["stills"], "no stills extracted"
        assert a == b, f"Dask and local extraction differ for {obj.key}"

    # the Prefect server kept its state in PostgreSQL: both runs are there, completed
    assert count_flow_runs(scale.pg).get("COMPLETED", 0) >= 2
    assert cli.run("verify", "--case", case_ref).returncode == 0
    assert cli.run("verify", "--case", local_case).returncode == 0
    print(f"ingest deployment {t_ingest:.1f}s, extract deployment on Dask {t_extract:.1f}s")
