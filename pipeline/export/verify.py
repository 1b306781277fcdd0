"""Offline verification of an evidence bundle: no S3 needed; the verifier's home gives trust and memory.

Checks, naming every file that fails: the BagIt structure and both manifests
(every listed file exists and matches, no unlisted payload or tag files,
Payload-Oxum), the signed statement and file list (verify_seal), every custody
chain and signature (the same `check_chain` as online verify), and that each
original/derived file's hash equals the SHA-256 its signed custody event
records. Trust is never taken from the bundle: the statement must be signed by
a key given with --trusted-key, confirmed with --key-id, or trusted by the
verifier's home; its id is always printed for out-of-band comparison. Reads the
zip in place, one pass per member.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pipeline.custody.chain import Finding, Slot, check_chain, seq_from_name
from pipeline.custody.signing import key_id, load_public_pem
from pipeline.errors import UsageError
from pipeline.export import verify_seal
from pipeline.export.format import CHUNK, INDEX_NAME, MANIFEST, REPORTS, TAGMANIFEST

INDEX = INDEX_NAME


# ---- reading a bag from a zip or a directory --------------------------------
class _ZipBag:
    def __init__(self, path: Path) -> None:
        self.zf = zipfile.ZipFile(path)
        names = [i.filename for i in self.zf.infolist() if not i.is_dir()]
        self.prefix = _bag_prefix(names)
        self.files = {n[len(self.prefix):]: n for n in names if n.startswith(self.prefix)}
        self.outside = [n for n in names if not n.startswith(self.prefix)]

    def open(self, name: str) -> IO[bytes]:
        return self.zf.open(self.files[name])

    def close(self) -> None:
        self.zf.close()


class _DirBag:
    def __init__(self, path: Path) -> None:
        self.root = path
        self.prefix = ""
        self.files: dict[str, str] = {}
        for dirpath, _dirs, fnames in os.walk(path):
            for f in fnames:
                rel = (Path(dirpath) / f).relative_to(path).as_posix()
                self.files[rel] = rel
        self.outside: list[str] = []

    def open(self, name: str) -> IO[bytes]:
        return open(self.root / name, "rb")  # noqa: SIM115 - caller closes

    def close(self) -> None:
        pass


def _bag_prefix(names: list[str]) -> str:
    """The bag's base directory inside the zip ('' if bagit.txt is at the root)."""
    if "bagit.txt" in names:
        return ""
    tops = sorted({n.split("/", 1)[0] + "/" for n in names if n.count("/") == 1 and n.endswith("/bagit.txt")})
    return tops[0] if len(tops) == 1 else ""


# ---- the report ---------------------------------------------------------------
@dataclass
class BundleReport:
    bundle: str
    bag: str = ""
    case: str = ""
    files_checked: int = 0
    bytes_hashed: int = 0
    keys: list[dict[str, str]] = field(default_factory=list)
    exhibits: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    statement_key: str = ""
    treehead: dict[str, Any] = field(default_factory=dict)
    timestamp: str | None = None
    superseded: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    def fail(self, subject: str, problem: str) -> None:
        self.findings.append(Finding(subject, problem))

    def as_dict(self) -> dict[str, Any]:
        return {"result": "PASS" if self.ok else "FAIL", "bundle": self.bundle, "bag": self.bag, "case": self.case,
                "files_checked": self.files_checked, "bytes_hashed": self.bytes_hashed, "keys": self.keys,
                "exhibits": self.exhibits, "statement_key": self.statement_key, "treehead": self.treehead,
                "timestamp": self.timestamp, "superseded": self.superseded, "notes": self.notes,
                "failures": [{"subject": f.subject, "problem": f.problem} for f in self.findings]}


def _hash_all(bag: _ZipBag | _DirBag, rep: BundleReport) -> dict[str, tuple[str, int]]:
    """SHA-256 and size of every file in the bag, one streamed pass each."""
    out: dict[str, tuple[str, int]] = {}
    for name in sorted(bag.files):
        h = hashlib.sha256()
        size = 0
        try:
            with bag.open(name) as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
                    size += len(chunk)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            rep.fail(name, f"unreadable: damaged inside the zip ({exc})")
            continue
        out[name] = (h.hexdigest(), size)
        rep.files_checked += 1
        rep.bytes_hashed += size
    return out


def _read_small(bag: _ZipBag | _DirBag, name: str, limit: int = 256 * 1024 * 1024) -> bytes | None:
    if name not in bag.files:
        return None
    try:
        with bag.open(name) as f:
            return f.read(limit)
    except (zipfile.BadZipFile, OSError, EOFError):
        return None


def _unsafe(path: str) -> bool:
    p = PurePosixPath(path)
    return p.is_absolute() or ".." in p.parts or "\\" in path or path.startswith("~")


def _parse_manifest(data: bytes, name: str, rep: BundleReport) -> dict[str, str]:
    """bagit conventions: `<hex> <path>` per line (any whitespace), %0A/%0D for newlines in names."""
    entries: dict[str, str] = {}
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        rep.fail(name, "not UTF-8 text")
        return entries
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split(None, 1)
        if len(parts) != 2 or len(parts[0]) != 64 or any(c not in "0123456789abcdefABCDEF" for c in parts[0]):
            rep.fail(name, f"line {n} is not '<sha256>  <path>': {line[:100]!r}")
            continue
        path = parts[1].replace("%0A", "\n").replace("%0D", "\r").replace("%0a", "\n").replace("%0d", "\r")
        path = path.removeprefix("*")
        if _unsafe(path):
            rep.fail(name, f"line {n} names an unsafe path {path!r}")
            continue
        if path in entries:
            rep.fail(name, f"line {n} lists {path} twice")
        entries[path] = parts[0].lower()
    return entries


def _check_manifests(bag: _ZipBag | _DirBag, hashes: dict[str, tuple[str, int]], rep: BundleReport) -> None:
    for n in bag.outside:
        rep.fail(n, "outside the bag's base directory")
    bagit = _read_small(bag, "bagit.txt")
    if bagit is None:
        rep.fail("bagit.txt", "missing: this is not a BagIt bag")
    else:
        lines = bagit.decode("utf-8", "replace").splitlines()
        if len(lines) < 2 or not lines[0].startswith("BagIt-Version: ") or \
                lines[1].strip() != "Tag-File-Character-Encoding: UTF-8":
            rep.fail("bagit.txt", "malformed: expected 'BagIt-Version: …' and 'Tag-File-Character-Encoding: UTF-8'")
    if not any(n.startswith("data/") for n in bag.files):
        rep.fail("data/", "missing: the bag has no payload directory")
    mdata = _read_small(bag, MANIFEST)
    if mdata is None:
        rep.fail(MANIFEST, "missing")
        payload: dict[str, str] = {}
    else:
        payload = _parse_manifest(mdata, MANIFEST, rep)
    tdata = _read_small(bag, TAGMANIFEST)
    if tdata is None:
        rep.fail(TAGMANIFEST, "missing: the tag files (bag-info.txt, manifest) are not protected")
        tagman: dict[str, str] = {}
    else:
        tagman = _parse_manifest(tdata, TAGMANIFEST, rep)
    for which, entries in ((MANIFEST, payload), (TAGMANIFEST, tagman)):
        for path, want in sorted(entries.items()):
            if which == MANIFEST and not path.startswith("data/"):
                rep.fail(which, f"lists {path}, which is not a payload file")
            if which == TAGMANIFEST and path.startswith("data/"):
                rep.fail(which, f"lists payload file {path}")
            got = hashes.get(path)
            if path not in bag.files:
                rep.fail(path, f"missing: listed in {which} but not in the bundle")
            elif got is not None and got[0] != want:
                rep.fail(path, f"content altered: sha256 {got[0]} != {which} {want}")
    for path in sorted(bag.files):
        if path.startswith("data/") and path not in payload:
            rep.fail(path, f"not listed in {MANIFEST} (added or renamed file)")
        elif not path.startswith("data/") and path != TAGMANIFEST and path not in tagman \
                and not path.startswith("tagmanifest-"):
            rep.fail(path, f"tag file not listed in {TAGMANIFEST}")
    info = _read_small(bag, "bag-info.txt")
    if info is not None:
        oxum = [ln.split(":", 1)[1].strip() for ln in info.decode("utf-8", "replace").splitlines()
                if ln.startswith("Payload-Oxum:")]
        actual = f"{sum(s for p, (_, s) in hashes.items() if p.startswith('data/'))}." \
                 f"{sum(1 for p in bag.files if p.startswith('data/'))}"
        if oxum and oxum[0] != actual:
            rep.fail("bag-info.txt", f"Payload-Oxum {oxum[0]} != {actual} (bytes.files) found")


def _load_keys(bag: _ZipBag | _DirBag, rep: BundleReport) -> dict[str, Ed25519PublicKey]:
    keys: dict[str, Ed25519PublicKey] = {}
    for path in sorted(p for p in bag.files if ("/custody/keys/" in p or p.startswith("data/keys/"))
                       and p.endswith(".pem")):
        data = _read_small(bag, path, 64 * 1024) or b""
        try:
            pub = load_public_pem(data)
        except ValueError as exc:
            rep.fail(path, f"not an Ed25519 public key ({exc})")
            continue
        kid = key_id(pub)
        if PurePosixPath(path).stem != kid:
            rep.fail(path, f"key file name does not match its key id {kid}")
        keys[kid] = pub
    return keys


def verify_bundle(path: Path, trusted_keys: list[Path] | None = None, *, key_ids: list[str] | None = None,
                  tsa_roots: list[Path] | None = None, settings: Any = None) -> BundleReport:
    """Verify a bundle zip (or an unzipped bag directory) completely, offline.

    `trusted_keys` / `key_ids`: trust exactly these (PEM files; ids of keys in the bundle, confirmed out of
    band); otherwise the keys the verifier's home trusts. `settings`: the verifier's home (trust, TSA roots,
    tolerance, bundles seen before); default: the current CUSTODY_HOME.
    """
    from datetime import timedelta

    from pipeline.custody.seen import Seen
    from pipeline.custody.timestamps import tsa_roots as load_roots
    from pipeline.settings import load_settings

    settings = settings or load_settings()
    path = Path(path)
    rep = BundleReport(str(path))
    try:
        bag: _ZipBag | _DirBag = _DirBag(path) if path.is_dir() else _ZipBag(path)
    except (zipfile.BadZipFile, OSError) as exc:
        rep.fail(str(path), f"not a readable zip file ({exc})")
        return rep
    try:
        rep.bag = bag.prefix.rstrip("/") or path.name
        hashes = _hash_all(bag, rep)
        _check_manifests(bag, hashes, rep)
        in_bundle = _load_keys(bag, rep)

        def read(name: str) -> bytes | None:
            return _read_small(bag, name)

        trust = verify_seal.trust(read, sorted(bag.files), rep, in_bundle, trusted_keys, key_ids, settings)
        sealed = verify_seal.statement(read, rep, trust, in_bundle)
        if sealed is not None:
            verify_seal.file_list(read, rep, sealed, hashes)
        chains = _check_custody(bag, hashes, rep, sealed.event_keys if sealed else trust.keys, sealed)
        if sealed is not None:
            case_id = (sealed.doc.get("case") or {}).get("id")
            chains[f"cases/{case_id}/log/"] = verify_seal.case_log(read, sorted(bag.files), rep, sealed)
            try:
                roots = load_roots(settings, tsa_roots)
            except (ValueError, UsageError) as exc:
                rep.fail("trusted time", str(exc))
                roots = []
            if not roots:
                rep.fail("trusted time", "time-stamps not checked: no trusted TSA root certificate (pass --tsa-root "
                                         "with the TSA's CA, obtained from the TSA, or set CUSTODY_TSA_ROOTS)")
            verify_seal.transparency(read, rep, sealed, chains, roots,
                                     timedelta(seconds=settings.time_tolerance_s),
                                     Seen(settings.home) if rep.ok else None)
    finally:
        bag.close()
    return rep


def _exhibit_dirs(bag: _ZipBag | _DirBag) -> Iterator[str]:
    seen = set()
    for p in sorted(bag.files):
        if p.startswith("data/exhibits/") and "/custody/events/" in p:
            d = p.split("/custody/events/", 1)[0]
            if d not in seen:
                seen.add(d)
                yield d


def _check_custody(bag: _ZipBag | _DirBag, hashes: dict[str, tuple[str, int]], rep: BundleReport,
                   trusted: dict[str, Ed25519PublicKey], sealed: verify_seal.Sealed | None
                   ) -> dict[str, list[dict[str, Any]]]:
    """Chains and files against bundle.json (which must match the signed statement); returns events by chain."""
    chains: dict[str, list[dict[str, Any]]] = {}
    raw_index = _read_small(bag, INDEX)
    try:
        index = json.loads(raw_index) if raw_index else None
    except ValueError:
        index = None
    if index is None:
        rep.fail(INDEX, "missing or unreadable: cannot match files to custody records")
        index = {"exhibits": []}
    rep.case = str((index.get("case") or {}).get("ref", ""))
    if sealed is not None:
        verify_seal.index_matches(rep, sealed, index)
        files_of = {x.get("folder"): x.get("files", []) for x in index.get("exhibits", [])}
        index = {**index, "exhibits": [{**x, "files": files_of.get(x["folder"], [])}
                                       for x in sealed.doc.get("exhibits", [])]}
    declared = {x.get("folder"): x for x in index.get("exhibits", [])}
    described: set[str] = set()
    for folder in sorted(set(_exhibit_dirs(bag)) | set(declared)):
        decl = declared.get(folder) or {}
        ex_id = decl.get("id")
        slots = []
        for p in sorted(p for p in bag.files if p.startswith(f"{folder}/custody/events/")):
            seq = seq_from_name(p)
            data = _read_small(bag, p)
            slots.append(Slot(p, seq if seq is not None else -1, data))
        expected_len = int((decl.get("chain") or {}).get("length", 0))
        chain = check_chain(slots, trusted, ex_id, expected_len)
        for f in chain.findings:
            rep.findings.append(f)
        head = (decl.get("chain") or {}).get("head")
        if head and chain.ok and chain.head_hash != head:
            rep.fail(f"{folder}/custody/events/", f"chain ends at {chain.head_hash}, bundle index says {head}")
        if not decl:
            rep.fail(folder, f"exhibit folder not described in {INDEX}")
        # each file's hash must equal the SHA-256 its signed custody event records
        recorded: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
        for ev in chain.events:
            for o in ev.get("objects", []):
                if o.get("role") in ("original", "derived"):
                    recorded.setdefault((o.get("bucket"), o.get("key"), o.get("version_id")), o)
        present: set[tuple[Any, Any, Any]] = set()
        for f in decl.get("files", []):
            fpath = f.get("path", "")
            described.add(fpath)
            if f.get("role") not in ("original", "derived"):
                continue
            ident = (f.get("bucket"), f.get("key"), f.get("version_id"))
            rec = recorded.get(ident)
            got = hashes.get(fpath)
            if rec is None:
                rep.fail(fpath, f"no custody event records object {ident[0]}/{ident[1]} version {ident[2]}")
                continue
            present.add(ident)
            if got is None:
                if fpath not in bag.files:
                    rep.fail(fpath, "missing from the bundle")
                continue
            if got[0] != rec.get("sha256") or got[1] != int(rec.get("size", -1)):
                rep.fail(fpath, f"differs from its custody record: sha256 {got[0]} size {got[1]}, recorded "
                                f"{rec.get('sha256')} size {rec.get('size')}")
        for ident, o in recorded.items():
            if ident not in present and o.get("role") == "original":
                rep.fail(folder, f"original {o.get('original_name') or ident[1]} recorded in custody is not in the "
                                 "bundle")
        if ex_id:
            chains[f"exhibits/{ex_id}/events/"] = chain.events
        rep.exhibits.append({"folder": folder, "exhibit": decl.get("ref"), "exhibit_id": ex_id,
                             "events": len(chain.events), "head": chain.head_hash, "chain_ok": chain.ok,
                             "objects_checked": len(present)})
    described |= {INDEX, *REPORTS, *(index.get("metadata_files") or [])}
    for p in sorted(bag.files):
        if p.startswith("data/") and p not in described:
            rep.fail(p, f"payload file not described in {INDEX} (no custody record)")
    return chains
