"""Writing a bundle's signed completeness: transparency material, key changes, the file list, the statement.

Called by the builder once the payload is in the zip; the statement goes last but for the BagIt manifests,
so it can pin the list of every other file.
"""

from __future__ import annotations

import hashlib
import json
from importlib.resources import files as package_files
from typing import Any

from pipeline import __version__
from pipeline.custody.events import iso
from pipeline.custody.keys import SignerBackend
from pipeline.export.bagzip import BagZip
from pipeline.export.format import (
    ANCHORS,
    CHECKER,
    CONSISTENCY,
    FILE_LIST,
    KEY_CHANGES_DIR,
    PROOFS,
    STATEMENT,
    TREEHEAD,
    TREEHEAD_TOKEN,
)
from pipeline.export.statement import SCHEMA, file_list, sign_statement
from pipeline.export.transparency import Proven


def _json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False).encode()


def write_transparency(z: BagZip, proven: Proven, key_changes: list[dict[str, Any]]) -> list[str]:
    """The tree head, its token, proofs, anchors, consistency proofs, the stand-alone checker; returns their paths."""
    assert proven.state.envelope is not None
    written = [TREEHEAD, PROOFS, ANCHORS, CONSISTENCY, CHECKER]
    z.write_bytes(TREEHEAD, _json(proven.state.envelope))
    if proven.token is not None:
        z.write_bytes(TREEHEAD_TOKEN, proven.token)
        written.append(TREEHEAD_TOKEN)
    z.write_bytes(PROOFS, _json({"tree_size": proven.state.size, "chains": proven.proofs}))
    z.write_bytes(ANCHORS, _json({"anchors": proven.anchors}))
    z.write_bytes(CONSISTENCY, _json({"tree_size": proven.state.size, "from_earlier_bundles": proven.consistency}))
    for path, data in sorted(proven.files.items()):
        z.write_bytes(path, data)
        written.append(path)
    z.write_bytes(CHECKER, package_files("pipeline.export").joinpath("check_bundle.py").read_bytes())
    for rec in key_changes:
        doc = rec["keychange"]
        path = f"{KEY_CHANGES_DIR}{doc['old_key_id']}.{doc['new_key_id']}.json"
        z.write_bytes(path, _json(rec))
        written.append(path)
    return written


def seal(z: BagZip, signer: SignerBackend, *, meta: dict[str, Any], proven: Proven,
         case_log: tuple[int, str], signing_keys: list[str], selection: str) -> dict[str, Any]:
    """Write custody-files.txt and the signed custody-statement.json; returns the statement envelope."""
    listed = file_list(z.written)
    z.write_bytes(FILE_LIST, listed)
    head = proven.state.head
    assert head is not None
    doc = {
        "schema": SCHEMA, "bundle_id": meta["bundle_id"], "bag": meta["bag"], "created": meta["created"],
        "case": meta["case"], "prepared_by": meta["prepared_by"], "recipient": meta["recipient"],
        "reason": meta["reason"], "working_copies": meta["working_copies"], "selection": selection,
        "exhibits": [{"id": x["id"], "ref": x["ref"], "officer": x["officer"], "folder": x["folder"],
                      "chain": x["chain"]} for x in meta["exhibits"]],
        "case_log": {"length": case_log[0], "head": case_log[1]},
        "files": {"list": FILE_LIST, "sha256": hashlib.sha256(listed).hexdigest(), "count": listed.count(b"\n")},
        "signing_keys": signing_keys,
        "treehead": {"log_id": head.log_id, "size": head.size, "root": head.root, "time": head.time,
                     "sha256": head.sha256.hex()},
        "timestamp": None if proven.gen_time is None else {"gen_time": iso(proven.gen_time),
                                                           "token": TREEHEAD_TOKEN},
        "tool": f"custody {__version__}",
    }
    env = sign_statement(doc, signer)
    z.write_bytes(STATEMENT, _json(env))
    return env
