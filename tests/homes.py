"""A second CUSTODY_HOME on the same store: an examiner with no witness state, trusting only what it was given."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

from tests.conftest import Cli

B = "custody-custody"


def examiner(cli: Cli, stack_status: dict, home: Path, *, trust_operator: bool = True,
             tsa_root: bool = True) -> Cli:
    """A home pointing at the session store by its endpoint and keys (nothing started, nothing shared): it trusts
    the operator's public key only if copied into its trusted folder, as an examiner would."""
    (home / "keys" / "trusted").mkdir(parents=True)
    (cli.home / "keys" / "trusted").mkdir(parents=True, exist_ok=True)
    if trust_operator:  # the operator's keys: their own (made on first use) and the other hosts they trust
        cli.run("key", "show")
        shutil.copy(cli.home / "keys" / "signing-ed25519.pub", home / "keys" / "trusted" / "operator.pem")
        for p in (cli.home / "keys" / "trusted").glob("*.pem"):
            shutil.copy(p, home / "keys" / "trusted" / f"host-{p.name}")
    c = Cli(home)
    c.env.update({"CUSTODY_S3_ENDPOINT": stack_status["endpoint"], "CUSTODY_S3_ACCESS_KEY": stack_status["access_key"],
                  "CUSTODY_S3_SECRET_KEY": stack_status["secret_key"], "CUSTODY_ACTOR": "examiner"})
    if tsa_root:
        c.env["CUSTODY_TSA_ROOTS"] = json.dumps([str(cli.home / "stack" / "tsa" / "ca.pem")])
    return c


def verify_json(c: Cli, *args: str) -> tuple[int, dict]:
    proc = c.run("verify", *args, "--json", check=False)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def failures(rep: dict) -> str:
    """Every failure of a case or bundle report, as one string to search."""
    out = list(rep.get("failures", []))
    out += rep.get("case_log", {}).get("failures", [])
    out += rep.get("transparency", {}).get("failures", [])
    for x in rep.get("exhibits", []):
        out += x.get("failures", [])
    return json.dumps(out)


def hide(raw, key: str, bucket: str = B) -> None:  # type: ignore[no-untyped-def]
    """One delete marker (allowed even on COMPLIANCE-locked objects)."""
    raw.remove_object(bucket, key)


def unhide(raw, key: str, bucket: str = B) -> None:  # type: ignore[no-untyped-def]
    """Remove the delete marker again (deleting a marker by its version id is always allowed)."""
    for v in raw.list_objects(bucket, prefix=key, include_version=True):
        if v.object_name == key and v.is_delete_marker:
            raw.remove_object(bucket, key, version_id=v.version_id)


def put(raw, key: str, data: bytes, bucket: str = B) -> None:  # type: ignore[no-untyped-def]
    raw.put_object(bucket, key, io.BytesIO(data), len(data))


def bypass_delete(raw, key: str, version_id: str, bucket: str = B) -> None:  # type: ignore[no-untyped-def]
    """DELETE one version with x-amz-bypass-governance-retention (works on GOVERNANCE locks only)."""
    raw._execute("DELETE", bucket, key, query_params={"versionId": version_id},
                 headers={"x-amz-bypass-governance-retention": "true"})
