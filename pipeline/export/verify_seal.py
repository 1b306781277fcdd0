"""Offline checks of a bundle's signed completeness: statement, file list, case log, proofs, time, supersession.

The statement is the root: it must be signed by a key the verifier trusts (never merely one found in the
bundle). Keys it names as the signers of the bundle's events and tree heads are then trusted for those,
because the trusted signer vouches for them. Everything else is checked against it: every file by the
signed list, each chain's length and head, the case log's record of which exhibits exist, the inclusion
of every chain head in the signed tree head, RFC 3161 tokens, and that no event was backdated.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline.custody import treehead
from pipeline.custody.caselog import SCHEMA as CASELOG_SCHEMA
from pipeline.custody.chain import Slot, check_chain, seq_from_name
from pipeline.custody.events import GENESIS, event_hash
from pipeline.custody.keys import Trust, load_trust
from pipeline.custody.merkle import verify_consistency, verify_inclusion
from pipeline.custody.seen import Seen
from pipeline.custody.signing import Signer
from pipeline.custody.timecheck import Anchor, check_times, parse_time
from pipeline.custody.tlogformat import leaf, leaf_hash_of
from pipeline.custody.tsa import TimestampInvalid, verify_token
from pipeline.export.format import (
    ANCHORS,
    CASE_LOG_DIR,
    CONSISTENCY,
    FILE_LIST,
    KEY_CHANGES_DIR,
    PROOFS,
    STATEMENT,
    TREEHEAD,
    TREEHEAD_TOKEN,
)
from pipeline.export.statement import UNLISTED, StatementError, check_statement, parse_file_list, signature_ok


def trust(read: Any, names: list[str], rep: Any, in_bundle: dict[str, Ed25519PublicKey],
          trusted_paths: list[Path] | None, key_ids: list[str] | None, settings: Any) -> Trust:
    """Explicit trust (--trusted-key, --key-id) replaces the home's; key changes in the bundle extend it."""
    if trusted_paths or key_ids:
        t = Trust()
        t.add_pem_files(trusted_paths or [], "--trusted-key")
        for kid in t.add_confirmed_ids(in_bundle, key_ids or []):
            rep.fail("--key-id", f"no key with id {kid} in this bundle")
    else:
        own = settings.signing_key_path
        t = load_trust(settings, Signer.load_or_create(own) if own.exists() else None)
    changes = []
    for p in sorted(p for p in names if p.startswith(KEY_CHANGES_DIR) and p.endswith(".json")):
        try:
            changes.append(json.loads(read(p) or b""))
        except ValueError:
            rep.fail(p, "not JSON")
    for problem in t.apply_changes(changes):
        rep.fail(KEY_CHANGES_DIR, problem)
    for k in sorted(t.keys):
        rep.keys.append({"key_id": k, "source": f"trusted ({t.why[k]})"})
    for k in sorted(set(in_bundle) - set(t.keys)):
        rep.keys.append({"key_id": k, "source": "bundle (not trusted by itself)"})
    return t


@dataclass
class Sealed:
    """The verified statement and what it lets the rest of the check rely on."""

    doc: dict[str, Any]
    signer: str
    event_keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)


def statement(read: Any, rep: Any, trust: Trust, in_bundle: dict[str, Ed25519PublicKey]) -> Sealed | None:
    """Check the statement's form, hash and signature; None (with findings) when it cannot be relied on."""
    raw = read(STATEMENT)
    if raw is None:
        rep.fail(STATEMENT, "missing: nothing signed says what this bundle holds, so a truncated or re-packed "
                            "bundle could not be told apart (made by an older custody version?)")
        return None
    try:
        doc, kid, value = check_statement(json.loads(raw))
    except (ValueError, StatementError) as exc:
        rep.fail(STATEMENT, f"unusable: {exc}")
        return None
    rep.statement_key = kid
    pub = trust.keys.get(kid)
    if pub is None:
        rep.fail(STATEMENT, f"signed by untrusted key {kid}: confirm this key id with the sender by a separate "
                            f"channel, then run `custody verify BUNDLE --key-id {kid}` (or --trusted-key with "
                            "the PEM they gave you, or put it in $CUSTODY_HOME/keys/trusted/)")
        return None
    if not signature_ok(doc, value, pub):
        rep.fail(STATEMENT, f"bad signature: does not verify with key {kid}")
        return None
    keys = dict(trust.keys)
    for k in doc.get("signing_keys", []):
        if k in in_bundle and k not in keys:
            keys[k] = in_bundle[k]  # vouched for by the trusted signer of the statement
    return Sealed(doc, kid, keys)


def file_list(read: Any, rep: Any, sealed: Sealed, hashes: dict[str, tuple[str, int]]) -> None:
    raw = read(FILE_LIST)
    files = sealed.doc.get("files") or {}
    if raw is None or hashlib.sha256(raw).hexdigest() != files.get("sha256"):
        rep.fail(FILE_LIST, "missing or not the file list the statement signed")
        return
    listed = parse_file_list(raw)
    present = {p for p in hashes if p not in UNLISTED}
    for p in sorted(present | set(listed)):
        if p not in listed:
            rep.fail(p, "not in the signed file list: added after the bundle was signed")
        elif p not in present:
            rep.fail(p, "missing: the signed file list names it (removed after signing)")
        elif hashes[p][0] != listed[p]:
            rep.fail(p, "content altered: differs from the signed file list")


def index_matches(rep: Any, sealed: Sealed, index: dict[str, Any]) -> None:
    """bundle.json (unsigned, but in the signed file list) must say what the statement says."""
    want = {x["folder"]: (x["id"], x["ref"], x["chain"]) for x in sealed.doc.get("exhibits", [])}
    got = {x.get("folder"): (x.get("id"), x.get("ref"), x.get("chain")) for x in index.get("exhibits", [])}
    if want != got:
        rep.fail("data/bundle.json", "its exhibits or chain heads differ from the signed statement")


def case_log(read: Any, names: list[str], rep: Any, sealed: Sealed) -> list[dict[str, Any]]:
    """The case log in the bundle: intact, as long as stated, and every exhibit it records accounted for."""
    slots = []
    for p in sorted(n for n in names if n.startswith(CASE_LOG_DIR)):
        seq = seq_from_name(p)
        slots.append(Slot(p, seq if seq is not None else -1, read(p)))
    stated = sealed.doc.get("case_log") or {}
    chain = check_chain(slots, sealed.event_keys, None, int(stated.get("length", 0)))
    for f in chain.findings:
        rep.fail(f"case log {f.subject}", f.problem)
    if chain.ok and chain.head_hash != stated.get("head"):
        rep.fail(CASE_LOG_DIR, f"case log ends at {chain.head_hash}, the statement says {stated.get('head')}")
    case_id = (sealed.doc.get("case") or {}).get("id")
    recorded: dict[str, str] = {}
    for ev in chain.events:
        if ev.get("schema") != CASELOG_SCHEMA or (ev.get("case") or {}).get("id") != case_id:
            rep.fail(f"case log entry {ev.get('seq')}", "not an entry of this case's log")
        elif ev.get("action") == "exhibit_added":
            rec = ev.get("record") or {}
            recorded[str(rec.get("id"))] = str(rec.get("ref"))
    bundled = {x["id"] for x in sealed.doc.get("exhibits", [])}
    left_out = sorted(ref for i, ref in recorded.items() if i not in bundled)
    if left_out and sealed.doc.get("selection") == "all":
        rep.fail(CASE_LOG_DIR, f"the case log records exhibit(s) {', '.join(left_out)}, which this bundle leaves out "
                               "although its statement says it holds every exhibit of the case")
    elif left_out:
        rep.notes.append(f"the case holds {len(recorded)} exhibit(s); this bundle discloses a selection: not "
                         f"included {', '.join(left_out)}")
    return chain.events


def transparency(read: Any, rep: Any, sealed: Sealed, chains: dict[str, list[dict[str, Any]]],
                 roots: list[x509.Certificate], tolerance: timedelta, seen: Seen | None) -> None:
    """Tree head, inclusion of every chain head, time-stamps, anchors, event times, supersession."""
    before = len(rep.findings)
    try:
        env = json.loads(read(TREEHEAD) or b"")
        head = treehead.verify(env, sealed.event_keys)
    except (ValueError, treehead.TreeHeadError) as exc:
        rep.fail(TREEHEAD, f"unusable tree head: {exc}")
        return
    if head.sha256.hex() != (sealed.doc.get("treehead") or {}).get("sha256"):
        rep.fail(TREEHEAD, "is not the tree head the statement names")
        return
    rep.treehead = {"size": head.size, "root": head.root, "signed": head.time, "log_id": head.log_id}
    proofs = {p["chain"]: p for p in json.loads(read(PROOFS) or b'{"chains": []}').get("chains", [])}
    anchors: dict[str, list[Anchor]] = {c: [] for c in chains}
    gen = _token(read(TREEHEAD_TOKEN), head, roots, TREEHEAD_TOKEN, rep)
    for chain, events in chains.items():
        p = proofs.get(chain)
        n = len(events)
        h = event_hash(events[-1]) if events else GENESIS
        if p is None or p.get("length") != n or p.get("head") != h:
            rep.fail(PROOFS, f"no inclusion proof for the bundled head of {chain}")
            continue
        if not verify_inclusion(leaf_hash_of(leaf(chain, n, h)), p["index"], head.size,
                                [bytes.fromhex(x) for x in p["proof"]], head.root_bytes):
            rep.fail(PROOFS, f"inclusion proof of {chain} does not lead to the signed tree head's root")
        elif gen is not None:
            anchors[chain].append(Anchor(n, gen, "the bundle's time-stamped tree head"))
    for a in json.loads(read(ANCHORS) or b'{"anchors": []}').get("anchors", []):
        got = _anchor(read, a, sealed, roots, rep)
        if got is not None and a.get("chain") in anchors:
            anchors[a["chain"]].append(got)
    if roots:
        rep.timestamp = gen.strftime("%Y-%m-%dT%H:%M:%SZ") if gen else None
    created = parse_time(sealed.doc.get("created"))
    for chain, events in chains.items():
        label = "case log entry" if chain.startswith("cases/") else f"{chain.split('/')[1]} event"
        for f in check_times(events, anchors[chain], tolerance=tolerance, now=created, label=label,
                             timestamps_checked=bool(roots)):
            rep.fail(f"{f.subject} ({chain})", f.problem)
    if seen is not None and len(rep.findings) == before:  # only a bundle that verified is remembered or compared
        _supersession(read, rep, sealed, head, seen)


def _token(token: bytes | None, head: treehead.TreeHead, roots: list[x509.Certificate], name: str,
           rep: Any) -> Any:
    if token is None:
        rep.fail(name, "missing: the tree head is not time-stamped, so nothing anchors when these events existed")
        return None
    if not roots:
        return None
    try:
        return verify_token(token, head.sha256, roots)
    except TimestampInvalid as exc:
        rep.fail(name, f"time-stamp does not verify: {exc}")
        return None


def _anchor(read: Any, a: dict[str, Any], sealed: Sealed, roots: list[x509.Certificate], rep: Any) -> Anchor | None:
    base = f"data/transparency/anchors/{int(a.get('size', -1)):012d}"
    try:
        head = treehead.verify(json.loads(read(f"{base}.json") or b""), sealed.event_keys)
    except (ValueError, treehead.TreeHeadError) as exc:
        rep.fail(f"{base}.json", f"unusable anchor tree head: {exc}")
        return None
    if not verify_inclusion(leaf_hash_of(leaf(a["chain"], a["length"], a["head"])), a["index"], head.size,
                            [bytes.fromhex(x) for x in a["proof"]], head.root_bytes):
        rep.fail(ANCHORS, f"anchor of {a['chain']} at length {a['length']} does not lead to tree head {head.size}")
        return None
    gen = _token(read(f"{base}.tsr"), head, roots, f"{base}.tsr", rep)
    return Anchor(a["length"], gen, f"time-stamped tree head {head.size}") if gen else None


def _supersession(read: Any, rep: Any, sealed: Sealed, head: treehead.TreeHead, seen: Seen) -> None:
    """Compare with the newest bundle of this case this verifier has seen; remember this one if newer."""
    case_id = str((sealed.doc.get("case") or {}).get("id"))
    mine = {"bundle_id": sealed.doc.get("bundle_id"), "created": sealed.doc.get("created"),
            "treehead": {"size": head.size, "root": head.root, "time": head.time},
            "consistency": {str(c["size"]): {"root": c["root"], "proof": c["proof"], "bundle_id": c.get("bundle_id")}
                            for c in json.loads(read(CONSISTENCY) or b"{}").get("from_earlier_bundles", [])}}
    prev = seen.bundle(case_id)
    if prev is None or prev.get("bundle_id") == mine["bundle_id"]:
        seen.remember_bundle(case_id, mine)
        return
    old, new = (prev, mine) if prev["treehead"]["size"] <= head.size else (mine, prev)
    size, root = old["treehead"]["size"], old["treehead"]["root"]
    c = new["consistency"].get(str(size))
    proven = c is not None and c["root"] == root and verify_consistency(
        size, new["treehead"]["size"], bytes.fromhex(root), bytes.fromhex(new["treehead"]["root"]),
        [bytes.fromhex(x) for x in c["proof"]])
    if new is prev:
        rep.superseded = {"by": prev["bundle_id"], "created": prev.get("created"),
                          "tree_size": prev["treehead"]["size"], "consistency_proof": proven}
        rep.fail(STATEMENT, f"superseded: this verifier has already seen bundle {prev['bundle_id']} of this case "
                            f"(built {prev.get('created')}, tree head of {prev['treehead']['size']} leaves): newer "
                            "events exist. " + ("Its tree head extends this one's (consistency proof checked)."
                                                if proven else "No consistency proof links the two."))
        return
    if c is not None and not proven:
        rep.fail(CONSISTENCY, f"does not prove this bundle's tree head extends the one of bundle {prev['bundle_id']} "
                              "seen before: the log forked or one of them is forged")
        return
    if proven:
        rep.notes.append(f"extends bundle {prev['bundle_id']} seen before (consistency proof checked)")
    seen.remember_bundle(case_id, mine)
