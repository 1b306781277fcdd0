"""A careful forger's tools for tests: re-pack a bundle so that every hash, manifest and signature is consistent.

`reseal` re-signs every chain, the case log, a fresh tree head (with its own tree) and the statement with the
forger's key, time-stamped by the forger's own TSA. The result is internally perfect: only the verifier's
choice of whom to trust can tell it from the real thing, which is what attack 3 is about.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

from pipeline.custody import treehead
from pipeline.custody.events import GENESIS, canonical, envelope, event_hash
from pipeline.custody.merkle import MerkleTree
from pipeline.custody.signing import Signer, public_pem
from pipeline.custody.tlogformat import leaf, leaf_hash_of
from pipeline.custody.tsa import load_certificates, request_timestamp
from pipeline.export.statement import file_list, sign_statement


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def unzip(zpath: Path, dest: Path) -> Path:
    with zipfile.ZipFile(zpath) as zf:
        zf.extractall(dest)
    (bag,) = [p for p in dest.iterdir() if p.is_dir()]
    return bag


def rezip(bag: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w") as zf:
        for p in sorted(bag.rglob("*")):
            if p.is_file():
                zf.write(p, f"{bag.name}/{p.relative_to(bag).as_posix()}")
    return out


def write_manifests(bag: Path) -> None:
    """Recompute both BagIt manifests and Payload-Oxum, as a forger would."""
    payload = sorted(p for p in (bag / "data").rglob("*") if p.is_file())
    (bag / "manifest-sha256.txt").write_text("".join(f"{_sha(p.read_bytes())}  {p.relative_to(bag).as_posix()}\n"
                                                     for p in payload))
    info = (bag / "bag-info.txt").read_text().splitlines()
    oxum = f"{sum(p.stat().st_size for p in payload)}.{len(payload)}"
    (bag / "bag-info.txt").write_text("".join((f"Payload-Oxum: {oxum}" if ln.startswith("Payload-Oxum:") else ln)
                                              + "\n" for ln in info))
    tags = sorted(p for p in bag.iterdir() if p.is_file() and p.name != "tagmanifest-sha256.txt")
    (bag / "tagmanifest-sha256.txt").write_text("".join(f"{_sha(p.read_bytes())}  {p.name}\n" for p in tags))


def _resign_chain(folder: Path, signer: Signer, edit: dict[int, dict] | None = None) -> tuple[int, str]:
    prev = GENESIS
    docs = sorted(folder.glob("*.json"))
    for p in docs:
        ev = json.loads(p.read_bytes())["event"]
        ev.update((edit or {}).get(ev["seq"], {}))
        ev["prev_hash"] = prev
        p.write_bytes(json.dumps(envelope(ev, signer.sign(canonical(ev)), signer.key_id), indent=1).encode())
        prev = event_hash(ev)
    return len(docs), prev


def reseal(bag: Path, signer: Signer, tsa_url: str, tsa_ca: Path, plant: tuple[str, bytes] | None = None) -> None:
    """Re-sign everything in an unzipped bag with `signer`; optionally replace one original (path, bytes)."""
    index = json.loads((bag / "data/bundle.json").read_bytes())
    chains: list[tuple[str, int, str]] = []
    for x in index["exhibits"]:
        edit: dict[int, dict] = {}
        for f in x["files"]:
            if plant and f["path"] == plant[0]:
                (bag / f["path"]).write_bytes(plant[1])
                ev_path = bag / x["folder"] / "custody/events" / f"{f['event_seq']:08d}.json"
                ev = json.loads(ev_path.read_bytes())["event"]
                for o in ev["objects"]:
                    if o["key"] == f["key"]:
                        o["sha256"], o["size"] = _sha(plant[1]), len(plant[1])
                edit[ev["seq"]] = {"objects": ev["objects"]}
                f["sha256"], f["size"] = _sha(plant[1]), len(plant[1])
        keys = bag / x["folder"] / "custody/keys"
        shutil.rmtree(keys)
        keys.mkdir()
        (keys / f"{signer.key_id}.pem").write_bytes(public_pem(signer.public))
        x["files"] = [f for f in x["files"] if f["role"] != "public-key"] + [
            {"path": f"{x['folder']}/custody/keys/{signer.key_id}.pem", "role": "public-key"}]
        n, h = _resign_chain(bag / x["folder"] / "custody/events", signer, edit)
        x["chain"] = {"length": n, "head": h}
        chains.append((f"exhibits/{x['id']}/events/", n, h))
    n, h = _resign_chain(bag / "data/case/log", signer)
    chains.append((f"cases/{index['case']['id']}/log/", n, h))
    # a tree of the forger's own, its head signed and time-stamped by the forger's TSA
    tree = MerkleTree([leaf_hash_of(leaf(c, n, h)) for c, n, h in chains])
    head = treehead.build("forged-log", tree.size, tree.root())
    tdir = bag / "data/transparency"
    shutil.rmtree(tdir / "anchors", ignore_errors=True)
    (tdir / "treehead.json").write_text(json.dumps(treehead.sign(head, signer)))
    token = request_timestamp(head.sha256, [tsa_url], load_certificates(tsa_ca)).token
    (tdir / "treehead.tsr").write_bytes(token)
    (tdir / "proofs.json").write_text(json.dumps({"tree_size": tree.size, "chains": [
        {"chain": c, "length": n, "head": h, "index": i, "proof": [p.hex() for p in tree.inclusion_proof(i)]}
        for i, (c, n, h) in enumerate(chains)]}))
    (tdir / "anchors.json").write_text(json.dumps({"anchors": []}))
    (tdir / "consistency.json").write_text(json.dumps({"tree_size": tree.size, "from_earlier_bundles": []}))
    for p in (bag / "data/keys").glob("*.pem"):
        p.unlink()
    (bag / "data/keys" / f"{signer.key_id}.pem").write_bytes(public_pem(signer.public))
    index["signing_key_ids"] = [signer.key_id]
    index["metadata_files"] = sorted(p.relative_to(bag).as_posix() for p in
                                     [*(bag / "data/case/log").glob("*.json"), *tdir.rglob("*"),
                                      *(bag / "data/keys").rglob("*"), *(bag / "data/provenance").rglob("*")]
                                     if p.is_file())
    (bag / "data/bundle.json").write_text(json.dumps(index, indent=1, sort_keys=True))
    write_manifests(bag)
    hashes = {p.relative_to(bag).as_posix(): _sha(p.read_bytes()) for p in bag.rglob("*") if p.is_file()}
    listed = file_list(hashes)
    (bag / "custody-files.txt").write_bytes(listed)
    st = json.loads((bag / "custody-statement.json").read_bytes())["statement"]
    st["exhibits"] = [{"id": x["id"], "ref": x["ref"], "officer": x["officer"], "folder": x["folder"],
                       "chain": x["chain"]} for x in index["exhibits"]]
    st["case_log"] = {"length": chains[-1][1], "head": chains[-1][2]}
    st["files"] = {"list": "custody-files.txt", "sha256": _sha(listed), "count": listed.count(b"\n")}
    st["signing_keys"] = [signer.key_id]
    st["treehead"] = {"log_id": head.log_id, "size": head.size, "root": head.root, "time": head.time,
                      "sha256": head.sha256.hex()}
    (bag / "custody-statement.json").write_text(json.dumps(sign_statement(st, signer), indent=1))
    write_manifests(bag)
