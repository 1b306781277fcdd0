"""The store against a real S3 server: large files in bounded memory, locks enforced."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys

import pytest
from minio.error import S3Error

from bench._common import write_random as _write_big
from tests.conftest import CUSTODY


def _peak_rss_mb(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    """Run cmd in a fresh wrapper process so ru_maxrss is that command's alone."""
    wrapper = ("import resource,subprocess,sys,json;"
               "p=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
               "print(json.dumps({'rc':p.returncode,'out':p.stdout,'err':p.stderr[-3000:],"
               "'rss':resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))")
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], env=env, capture_output=True, text=True, check=True)
    import json

    res = json.loads(out.stdout)
    return res["rss"] / 1024, subprocess.CompletedProcess(cmd, res["rc"], res["out"], res["err"])


def test_1gb_round_trip_in_bounded_memory(cli, case_ref, tmp_path):
    big = tmp_path / "big.bin"
    sha = _write_big(big, 1024 * 1024 * 1024)
    rss, proc = _peak_rss_mb([CUSTODY, "ingest", str(big), "--case", case_ref, "--exhibit", "AB/1",
                              "--officer", "DC Test", "--json"], cli.env)
    assert proc.returncode == 0, proc.stderr
    assert rss < 200, f"ingest peak RSS {rss:.0f} MB"
    import json

    obj = json.loads(proc.stdout)["objects"][0]
    assert obj["sha256"] == sha and obj["size"] == 1024**3
    big.unlink()
    rss, proc = _peak_rss_mb([CUSTODY, "verify", "--case", case_ref, "--exhibit", "AB/1"], cli.env)
    assert proc.returncode == 0, proc.stderr
    assert "PASS" in proc.stdout
    assert rss < 200, f"verify (download + re-hash) peak RSS {rss:.0f} MB"


def test_locked_original_cannot_be_deleted_or_overwritten(cli, case_ref, tmp_path, raw_client):
    f = tmp_path / "clip.bin"
    f.write_bytes(os.urandom(1000))
    out = cli.json("ingest", str(f), "--case", case_ref, "--exhibit", "AB/2", "--officer", "DC Test")
    obj = out["objects"][0]
    with pytest.raises(S3Error) as exc:
        raw_client.remove_object(obj["bucket"], obj["key"], version_id=obj["version_id"])
    assert exc.value.code == "AccessDenied"
    # an "overwrite" can only add a version; the locked one stays byte-identical
    raw_client.put_object(obj["bucket"], obj["key"], io.BytesIO(b"forged"), 6)
    kept = raw_client.get_object(obj["bucket"], obj["key"], version_id=obj["version_id"]).read()
    assert hashlib.sha256(kept).hexdigest() == obj["sha256"]
    proc = cli.run("verify", "--case", case_ref, "--exhibit", "AB/2", check=False)
    assert proc.returncode == 1
    assert obj["key"] in proc.stderr and "overwritten" in proc.stderr


def test_declared_hash_mismatch_stores_nothing(evidence, case_ref):
    from pipeline.custody.actor import Actor
    from pipeline.errors import IntegrityError
    from pipeline.intake.originals import Offer
    from pipeline.intake.upload import store_stream

    case, ex = evidence.ensure_exhibit(case_ref, "AB/3", "DC Test", Actor("pytest"))
    with pytest.raises(IntegrityError, match="mismatch"):
        store_stream(evidence, case, ex, io.BytesIO(b"hello"), Offer("x"), actor=Actor("pytest"),
                     expected_sha256="0" * 64)
    assert [e["action"] for e in evidence.log.events(ex.id)] == ["exhibit_created"]


def test_multipart_upload_is_verified(evidence, case_ref, tmp_path):
    from pipeline.custody.actor import Actor
    from pipeline.intake.originals import Offer
    from pipeline.intake.upload import store_original

    f = tmp_path / "m.bin"
    sha = _write_big(f, 40 * 1024 * 1024 + 123)  # several parts
    case, ex = evidence.ensure_exhibit(case_ref, "AB/4", "DC Test", Actor("pytest"))
    obj = store_original(evidence, case, ex, f, Offer(f.name), actor=Actor("pytest"), expected_sha256=sha,
                         resumable=False)
    assert obj.sha256 == sha
    st = evidence.store.client.stat_object(obj.bucket, obj.key, version_id=obj.version_id)
    assert st.metadata["x-amz-meta-sha256"] == sha
    assert st.etag.endswith("-3")
