"""Evidence bundles: a BagIt bag (RFC 8493) inside a zip, streamed from S3.

A recipient must be able to check a bundle without this software, so the
bag follows the `bagit` library's conventions and its manifests are also
`sha256sum -c` input. Footage can be many GB: each object is streamed from
S3 straight into the zip and hashed in the same pass (never staged on disk,
never held in memory), and the hash must equal the custody record or the
build aborts. Manifests are just files, so they go at the end of the zip.
The finished bundle is stored under Object Lock and its hash recorded as an
`exported` custody event on every exhibit in it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.custody.actor import Actor
from pipeline.custody.caselog import CaseLogReport, caselog_prefix
from pipeline.custody.catalog import Case, Exhibit
from pipeline.custody.chain import check_chain
from pipeline.custody.events import iso
from pipeline.custody.log import events_prefix
from pipeline.custody.signing import key_id, load_public_pem, public_pem
from pipeline.errors import IntegrityError, UsageError
from pipeline.evidence import Evidence, ExhibitObject
from pipeline.export.bagzip import BagZip, prefetch
from pipeline.export.bundled import BundledExhibit, BundleResult
from pipeline.export.format import (
    BAG_VERSION,
    BUNDLE_SCHEMA,
    CASE_LOG_DIR,
    CHUNK,
    INDEX_NAME,
    STATEMENT,
    THUMB_BUDGET,
    THUMB_KINDS,
    THUMB_MAX,
    BundleFile,
    Plan,
    Progress,
    safe_part,
    tag_value,
)
from pipeline.export.readme import readme_text
from pipeline.export.report import MAX_THUMBS, ReportData, render_html, render_pdf
from pipeline.export.sealing import seal, write_transparency
from pipeline.export.transparency import Proven, prove
from pipeline.text import clean_human_text

C2PA_ANCHORS = "data/provenance/c2pa-trust-anchors.pem"  # validates the C2PA credentials of stills, sheets, clips


# ---- snapshot of the custody record ------------------------------------------
def _snapshot(ev: Evidence, exhibit: Exhibit, folder: str) -> BundledExhibit:
    """Read and check one exhibit's chain; refuse to export evidence whose custody is broken."""
    slots = ev.log.slots(exhibit.id)
    trusted = ev.log.trusted_keys()
    rep = check_chain(slots, trusted, exhibit.id, ev.log.witnessed_length(exhibit.id))
    if not rep.ok:
        raise IntegrityError(f"exhibit {exhibit.ref}: custody chain does not verify, not exporting it: "
                             + "; ".join(str(f) for f in rep.findings))
    raw = [(s.name.rsplit("/", 1)[-1], s.data or b"") for s in sorted(slots, key=lambda s: s.seq_from_name)]
    # only the keys that signed this chain (all trusted, or check_chain would have failed): a key merely
    # planted beside the log must not become something the recipient is asked to trust
    signers = {json.loads(d)["signature"]["key_id"] for _, d in raw}
    bucket = ev.store.buckets["custody"]
    keys: dict[str, bytes] = {}
    for kid in sorted(signers):
        pem = ev.store.try_get_bytes(bucket, f"exhibits/{exhibit.id}/keys/{kid}.pem")
        try:
            ok = pem is not None and key_id(load_public_pem(pem)) == kid
        except ValueError:
            ok = False
        keys[kid] = pem if ok and pem else public_pem(trusted[kid])
    objects = ev.objects(rep.events, roles=("original", "derived"))
    return BundledExhibit(exhibit, folder, rep.events, raw, keys, rep.head_hash, objects)


def _member_name(bx: BundledExhibit, i: int, obj: ExhibitObject, working_copies: bool) -> tuple[str, bool]:
    name = safe_part(obj.original_name or obj.key.rsplit("/", 1)[-1], 80)
    base = f"data/exhibits/{bx.folder}"
    if obj.role == "original":
        if working_copies:
            return f"{base}/working-copies/{i:03d}_WORKING-COPY_{name}", True
        return f"{base}/originals/{i:03d}_{name}", False
    kind = safe_part(str(obj.info.get("kind") or "derived"), 30)
    return f"{base}/derived/{i:03d}_{kind}_{name}", False


def _choose(ev: Evidence, case: Case, exhibit_refs: list[str] | None) -> tuple[CaseLogReport, list[Exhibit]]:
    """The exhibits to bundle, from the case log (never an index listing); the case log must verify."""
    cl = ev.cases.read(case.id, ev.log.trusted_keys())
    if not cl.ok:
        raise IntegrityError(f"case {case.ref}: its case log does not verify, not exporting: "
                             + "; ".join(str(f) for f in cl.chain.findings + cl.findings))
    if not exhibit_refs:
        return cl, cl.exhibits
    chosen = []
    for ref in dict.fromkeys(exhibit_refs):
        hit = next((e for e in cl.exhibits if e.ref == ref), None)
        if hit is None:
            ev.get(case.ref, ref)  # NotFoundError when it exists nowhere
            raise IntegrityError(f"exhibit {ref} is not recorded in the case log of {case.ref}: not exporting it")
        chosen.append(hit)
    return cl, chosen


def build_bundle(ev: Evidence, case_ref: str, exhibit_refs: list[str] | None, out: Path, *, actor: Actor,
                 working_copies: bool = False, recipient: str = "", reason: str = "",
                 progress: Progress | None = None, plan: Plan | None = None,
                 store_bundle: bool = True, keep: Callable[[ExhibitObject], bool] | None = None,
                 selection: str = "", **_future: Any) -> BundleResult:
    """Build, store (Object Lock) and record a bundle of a case's exhibits; keyword-only options may grow.

    `keep` chooses the derived objects that go in (originals always do; None: all); `selection` says how.
    """
    t0 = time.perf_counter()
    recipient, reason = clean_human_text(recipient, "recipient", 200), clean_human_text(reason, "reason", 500)
    case = ev.locate_case(case_ref) or ev.catalog.get_case(case_ref)
    case_log, exhibits = _choose(ev, case, exhibit_refs)
    if not exhibits:
        raise UsageError(f"case {case.ref!r} has no exhibits to bundle")
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise UsageError(f"--out must name a .zip file, not {out}")
    if out.exists():
        raise UsageError(f"{out} already exists; bundles are never overwritten, choose another name")
    out.parent.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    bundle_id = f"bundle-{uuid.uuid4().hex}"
    bag = f"{safe_part(case.ref, 60)}_{now.strftime('%Y%m%dT%H%M%SZ')}"

    folders: set[str] = set()
    snaps: list[BundledExhibit] = []
    for e in exhibits:
        folder = safe_part(e.ref, 40)
        while folder in folders:
            folder += "_"
        folders.add(folder)
        snaps.append(_snapshot(ev, e, folder))
    if keep is not None:
        for bx in snaps:
            bx.objects = [o for o in bx.objects if o.role == "original" or keep(o)]
    log_slots = ev.cases.chains.slots(caselog_prefix(case.id))

    if plan:
        plan("copying evidence", sum(o.size for bx in snaps for o in bx.objects))
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.part")
    z = BagZip(tmp, bag, now)
    thumb_bytes = 0
    try:
        for bx in snaps:
            for i, obj in enumerate(bx.objects):
                name, wc = _member_name(bx, i, obj, working_copies)
                label = f"{bx.exhibit.ref} {obj.original_name or name.rsplit('/', 1)[-1]}"[:60]
                is_thumb = (obj.role == "derived" and str(obj.info.get("kind", "")).lower() in THUMB_KINDS
                            and obj.size <= THUMB_MAX and thumb_bytes + obj.size <= THUMB_BUDGET
                            and len(bx.thumbnails) < MAX_THUMBS)
                tee = io.BytesIO() if is_thumb else None
                adv = (lambda n, _l=label: progress(_l, n)) if progress else None
                chunks = prefetch(ev.store.stream_object(obj.bucket, obj.key, obj.version_id, CHUNK))
                sha, size = z.write_stream(name, chunks, stored=True, progress=adv, tee=tee)
                if sha != obj.sha256 or size != obj.size:
                    raise IntegrityError(
                        f"object {obj.bucket}/{obj.key} version {obj.version_id} ({obj.original_name or obj.role}) of "
                        f"exhibit {bx.exhibit.ref} read as sha256 {sha} size {size}, custody record says "
                        f"{obj.sha256} size {obj.size}: bundle aborted (run `custody verify`)")
                bx.files.append(BundleFile(name, obj.role, sha, size, obj.bucket, obj.key, obj.version_id,
                                           obj.event_seq, obj.info.get("kind"), obj.original_name, obj.status, wc))
                if tee is not None and tee.tell() == size:
                    bx.thumbnails.append((obj.original_name or name.rsplit('/', 1)[-1], name, tee.getvalue()))
                    thumb_bytes += size
            for fname, data in bx.raw_events:
                name = f"data/exhibits/{bx.folder}/custody/events/{fname}"
                bx.files.append(BundleFile(name, "custody-event", z.write_bytes(name, data), len(data)))
            for kid, pem in sorted(bx.keys.items()):
                name = f"data/exhibits/{bx.folder}/custody/keys/{kid}.pem"
                bx.files.append(BundleFile(name, "public-key", z.write_bytes(name, pem), len(pem)))
        metadata = [f"{CASE_LOG_DIR}{s.name.rsplit('/', 1)[-1]}" for s in log_slots]
        for path, s in zip(metadata, log_slots, strict=True):
            z.write_bytes(path, s.data or b"")

        # every chain head in the bundle, proven in the transparency log and time-stamped now
        chains = [(events_prefix(bx.exhibit.id), len(bx.events), bx.head) for bx in snaps]
        chains.append((caselog_prefix(case.id), len(case_log.chain.events), case_log.chain.head_hash))
        proven = prove(ev, chains, case_log.bundles)
        metadata += write_transparency(z, proven, _key_changes(ev))
        signer_ids = _signers(snaps, log_slots, proven, ev.signer.key_id)
        for kid in signer_ids:
            path = f"data/keys/{kid}.pem"
            z.write_bytes(path, _public_pem(ev, kid))
            metadata.append(path)
        if ev.settings.content_credentials:  # the trust anchor that validates the stills' and clips' C2PA
            from pipeline.provenance.credentials import load_credentials

            z.write_bytes(C2PA_ANCHORS, load_credentials(ev.settings).trust_anchors_pem)
            metadata.append(C2PA_ANCHORS)

        heads = [(bx.exhibit.ref, len(bx.events), bx.head) for bx in snaps]
        key_ids = sorted({k for bx in snaps for k in bx.keys})
        exhibit_selection = "all" if len(snaps) == len(case_log.exhibits) else "subset"
        meta = {
            "schema": BUNDLE_SCHEMA, "bundle_id": bundle_id, "bag": bag, "created": iso(now),
            "case": case.brief(), "prepared_by": actor.as_dict(), "recipient": recipient, "reason": reason,
            "working_copies": working_copies, "signing_key_ids": key_ids, "tool": f"custody {__version__}",
            "derived_selection": selection or "originals and every derived object",
            "selection": exhibit_selection, "statement": STATEMENT, "metadata_files": sorted(metadata),
            "case_log": {"folder": CASE_LOG_DIR.rstrip("/"), "length": len(case_log.chain.events),
                         "head": case_log.chain.head_hash,
                         "exhibits": [e.ref for e in case_log.exhibits]},
            "exhibits": [{"id": bx.exhibit.id, "ref": bx.exhibit.ref, "officer": bx.exhibit.officer,
                          "description": bx.exhibit.description, "folder": f"data/exhibits/{bx.folder}",
                          "chain": {"length": len(bx.events), "head": bx.head},
                          "files": [f.as_dict() for f in bx.files]} for bx in snaps],
        }

        from pipeline.review.continuity import continuity_for

        rd = ReportData(meta=meta, exhibits=[(bx.exhibit, bx.events, bx.files, bx.thumbnails) for bx in snaps],
                        continuity=[continuity_for(ev, bx.exhibit, bx.events, bx.files) for bx in snaps])
        if progress:
            progress("report", 0)
        z.write_bytes("data/report/report.html", render_html(rd))
        z.write_bytes("data/report/report.pdf", render_pdf(rd))
        z.write_bytes(INDEX_NAME, json.dumps(meta, indent=1, sort_keys=True, ensure_ascii=False).encode())

        # tag files, then the signed statement over every file, then the manifests: order in a zip does not matter
        payload_bytes = sum(s for _, _, s in z.payload)
        info = _bag_info(meta, actor, heads, payload_bytes, len(z.payload), now)
        head = proven.state.head
        assert head is not None
        tags = {
            "bagit.txt": f"BagIt-Version: {BAG_VERSION}\nTag-File-Character-Encoding: UTF-8\n".encode(),
            "bag-info.txt": "".join(f"{k}: {tag_value(v)}\n" for k, v in info).encode(),
            "README.txt": readme_text(bag, working_copies, key_ids, heads, statement_key=ev.signer.key_id,
                                      treehead=head, gen_time=proven.gen_time, chains=proven.proofs,
                                      case_ref=case.ref).encode(),
        }
        for name, data in tags.items():
            z.write_bytes(name, data)
        statement = seal(z, ev.signer, meta=meta, proven=proven, signing_keys=signer_ids, selection=exhibit_selection,
                         case_log=(len(case_log.chain.events), case_log.chain.head_hash))
        z.write_bytes("manifest-sha256.txt", "".join(f"{h}  {p}\n" for h, p, _ in sorted(z.payload,
                                                                                          key=lambda x: x[1]))
                      .encode())
        tagman = "".join(f"{h}  {p}\n" for p, h in sorted(z.written.items()) if not p.startswith("data/"))
        z.write_bytes("tagmanifest-sha256.txt", tagman.encode())
        z.close()
        try:
            os.link(tmp, out)  # fails rather than replace a file that appeared meanwhile
            tmp.unlink()
        except FileExistsError:
            raise UsageError(f"{out} appeared while the bundle was built; not overwriting it") from None
        except OSError:  # no hard links (e.g. exFAT media): plain rename
            tmp.replace(out)
        built = time.perf_counter() - t0
    except BaseException:
        # a full disk fails the close too (it writes the central directory): the partial file goes regardless
        with contextlib.suppress(Exception):
            z.zf.close()
        tmp.unlink(missing_ok=True)
        raise

    result = BundleResult(bundle_id, out, bag, case, [bx.exhibit.ref for bx in snaps], "", out.stat().st_size,
                          payload_bytes, len(z.payload), key_ids=key_ids, build_seconds=built)
    result.treehead = {"size": head.size, "root": head.root, "time": head.time,
                       "statement_sha256": statement["statement_sha256"]}
    if store_bundle:
        if plan:
            plan("storing bundle", result.size)
        try:
            _store_and_record(ev, result, snaps, actor, working_copies, recipient, reason, progress)
        except BaseException:
            if len(result.events) < len(snaps):  # not (fully) recorded as exported: no unrecorded copy is left
                out.unlink(missing_ok=True)
            raise
    else:
        from hashing.stream import hash_file

        result.sha256 = hash_file(out).sha256
    ev.flush()
    result.seconds = time.perf_counter() - t0
    return result


def _bag_info(meta: dict[str, Any], actor: Actor, heads: list[tuple[str, int, str]], payload_bytes: int,
              payload_files: int, now: datetime) -> list[tuple[str, str]]:
    case = meta["case"]
    return [
        ("Bag-Software-Agent", f"custody {__version__} (streamed BagIt writer, bagit.py conventions)"),
        ("Bagging-Date", now.strftime("%Y-%m-%d")),
        ("Bagging-Timestamp", iso(now)),
        ("External-Identifier", meta["bundle_id"]),
        ("Internal-Sender-Identifier", case["ref"]),
        ("Case-Reference", case["ref"]),
        ("Case-Id", case["id"]),
        *[("Exhibit-Reference", f"{x['ref']} (id {x['id']}, officer {x['officer']})") for x in meta["exhibits"]],
        ("Prepared-By", f"{actor.name} ({actor.role})"),
        ("Prepared-At", iso(now)),
        ("Recipient", meta["recipient"] or "(not stated)"),
        ("Reason", meta["reason"] or "(not stated)"),
        ("Content", "working copies (byte-identical) of the originals" if meta["working_copies"] else "originals"),
        *[("Custody-Signing-Key-Id", k) for k in meta["signing_key_ids"]],
        *[("Custody-Chain-Head", f"{ref} length {n} last-event-sha256 {h}") for ref, n, h in heads],
        ("Custody-Statement", f"{STATEMENT} (signed; covers every file of this bag)"),
        ("Payload-Oxum", f"{payload_bytes}.{payload_files}"),
    ]


def _key_changes(ev: Evidence) -> list[dict[str, Any]]:
    return [r for r in ev.log.key_changes() if isinstance(r, dict) and "keychange" in r]


def _signers(snaps: list[BundledExhibit], log_slots: list[Any], proven: Proven, own: str) -> list[str]:
    """Every key that signed something in the bundle: events, case log entries, tree heads, the statement."""
    ids = {own, *(k for bx in snaps for k in bx.keys)}
    for s in log_slots:
        try:
            ids.add(json.loads(s.data or b"")["signature"]["key_id"])
        except (ValueError, KeyError, TypeError):
            continue
    envs = [proven.state.envelope] + [json.loads(v) for p, v in proven.files.items() if p.endswith(".json")]
    ids.update(e["signature"]["key_id"] for e in envs if e)
    return sorted(ids)


def _public_pem(ev: Evidence, kid: str) -> bytes:
    trusted = ev.log.trusted_keys()
    if kid not in trusted:
        raise IntegrityError(f"key {kid} signed part of this bundle but is not trusted here; not exporting")
    return public_pem(trusted[kid])


def _store_and_record(ev: Evidence, result: BundleResult, snaps: list[BundledExhibit], actor: Actor,
                      working_copies: bool, recipient: str, reason: str, progress: Progress | None) -> None:
    """Lock the bundle in the bundles bucket and record `exported` on every exhibit."""
    key = f"{result.case.id}/bundles/{result.bundle_id}.zip"
    adv = (lambda n: progress("storing bundle", n)) if progress else None
    obj = ev.store.put_file(ev.store.buckets["bundles"], key, result.path, content_type="application/zip", lock=True,
                            metadata={"case-id": result.case.id, "bundle-id": result.bundle_id,
                                      "exhibit-ids": ",".join(bx.exhibit.id for bx in snaps)}, progress=adv)
    result.sha256, result.bucket, result.key, result.version_id = obj.sha256, obj.bucket, obj.key, obj.version_id
    ref = {**obj.ref(), "role": "bundle", "status": "ok", "original_name": result.path.name,
           "content_type": "application/zip"}
    params = {"recipient": recipient, "reason": reason, "working_copies": working_copies,
              "bundle_id": result.bundle_id, "bag": result.bag_name, "exhibits": result.exhibits,
              "format": f"BagIt {BAG_VERSION} in zip"}
    for bx in snaps:
        e = ev.record(result.case, bx.exhibit, "exported", actor=actor, objects=[ref], parameters=params,
                      details={"payload_files": result.payload_files, "payload_bytes": result.payload_bytes,
                               "chain_length_in_bundle": len(bx.events), "chain_head_in_bundle": bx.head})
        result.events[bx.exhibit.ref] = e["seq"]
    ev.cases.append(result.case, "bundle_exported", {
        "bundle_id": result.bundle_id, "object": obj.ref(), "recipient": recipient, "reason": reason,
        "exhibits": [{"id": bx.exhibit.id, "ref": bx.exhibit.ref, "length": len(bx.events), "head": bx.head}
                     for bx in snaps],
        "treehead": {"size": result.treehead["size"], "root": result.treehead["root"]},
        "statement_sha256": result.treehead["statement_sha256"]}, actor)


