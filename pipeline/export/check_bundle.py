"""Stand-alone check of an unzipped custody bundle: Python 3 standard library only, shipped inside each bundle.

    python3 data/transparency/check_bundle.py BAG_DIR          # every check below; exit 0 when all pass
    python3 data/transparency/check_bundle.py canonical FILE FIELD > FIELD.bin   # bytes a signature covers

It recomputes what needs no cryptography library: every event's SHA-256 (canonical JSON: keys sorted, no
spaces, UTF-8) and prev_hash link; each chain's length and head against the signed statement; each chain
head's RFC 9162 leaf and inclusion proof against the tree head root; the anchors (earlier time-stamped
heads); the signed file list against the files. Ed25519 signatures and RFC 3161 tokens need openssl: the
commands are printed (see README.txt steps 2-4). Written to be read: about 150 lines.
"""

import hashlib
import json
import sys
from pathlib import Path

GENESIS = "0" * 64


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def leaf_hash(data):
    return hashlib.sha256(b"\x00" + data).digest()


def check_inclusion(leaf, index, size, proof, root):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def chain_head(folder, problems, label):
    """(length, head hash) of a folder of event documents, checking each hash and link."""
    prev = GENESIS
    paths = sorted(folder.glob("*.json"))
    for n, path in enumerate(paths):
        doc = json.loads(path.read_bytes())
        ev = doc["event"]
        h = hashlib.sha256(canonical(ev)).hexdigest()
        if h != doc["event_sha256"]:
            problems.append(f"{path}: event_sha256 is not the hash of its event")
        if ev.get("seq") != n or path.stem != f"{n:08d}":
            problems.append(f"{path}: out of place (expected seq {n})")
        if ev.get("prev_hash") != prev:
            problems.append(f"{path}: prev_hash does not link to the previous event")
        prev = h
    print(f"  {label}: {len(paths)} documents, head {prev}")
    return len(paths), prev


def check(bag):
    problems = []
    st = json.loads((bag / "custody-statement.json").read_bytes())
    doc = st["statement"]
    if hashlib.sha256(canonical(doc)).hexdigest() != st["statement_sha256"]:
        problems.append("custody-statement.json: statement_sha256 does not match the statement")
    listed = (bag / "custody-files.txt").read_bytes()
    if hashlib.sha256(listed).hexdigest() != doc["files"]["sha256"]:
        problems.append("custody-files.txt is not the file list the statement signed")
    files = {}
    for line in listed.decode().splitlines():
        digest, name = line.split("  ", 1)
        files[name] = digest
    unlisted = {"custody-files.txt", "custody-statement.json", "manifest-sha256.txt", "tagmanifest-sha256.txt"}
    present = {p.relative_to(bag).as_posix() for p in bag.rglob("*") if p.is_file()} - unlisted
    for name in sorted(present | set(files)):
        if name not in files:
            problems.append(f"{name}: in the bag but not in the signed file list (added)")
        elif name not in present:
            problems.append(f"{name}: in the signed file list but missing (removed)")
        elif hashlib.sha256((bag / name).read_bytes()).hexdigest() != files[name]:
            problems.append(f"{name}: differs from the signed file list (altered)")
    print(f"file list: {len(files)} files")
    heads = {}
    for x in doc["exhibits"]:
        n, h = chain_head(bag / x["folder"] / "custody" / "events", problems, f"exhibit {x['ref']}")
        if (n, h) != (x["chain"]["length"], x["chain"]["head"]):
            problems.append(f"exhibit {x['ref']}: the statement says {x['chain']['length']} events ending in "
                            f"{x['chain']['head']}, the bundle holds {n} ending in {h}")
        heads[f"exhibits/{x['id']}/events/"] = (n, h)
    n, h = chain_head(bag / "data" / "case" / "log", problems, "case log")
    if (n, h) != (doc["case_log"]["length"], doc["case_log"]["head"]):
        problems.append("case log: differs from the statement")
    heads[f"cases/{doc['case']['id']}/log/"] = (n, h)
    th = json.loads((bag / "data/transparency/treehead.json").read_bytes())
    th_sha = hashlib.sha256(canonical(th["treehead"])).hexdigest()
    if th_sha != doc["treehead"]["sha256"] or th_sha != th["treehead_sha256"]:
        problems.append("data/transparency/treehead.json is not the tree head the statement names")
    size, root = th["treehead"]["size"], bytes.fromhex(th["treehead"]["root"])
    proofs = json.loads((bag / "data/transparency/proofs.json").read_bytes())["chains"]
    for p in proofs:
        leaf = {"schema": "custody.tlog.leaf/1", "chain": p["chain"], "length": p["length"], "head": p["head"]}
        ok = check_inclusion(leaf_hash(canonical(leaf)), p["index"], size, [bytes.fromhex(x) for x in p["proof"]],
                             root)
        if not ok:
            problems.append(f"inclusion proof of {p['chain']} fails against the tree head root")
        if heads.get(p["chain"]) != (p["length"], p["head"]):
            problems.append(f"inclusion proof of {p['chain']} is for another head than the bundle's")
    missing = set(heads) - {p["chain"] for p in proofs}
    problems += [f"no inclusion proof for {c}" for c in sorted(missing)]
    print(f"tree head: {size} leaves, root {root.hex()}, {len(proofs)} inclusion proofs")
    for a in json.loads((bag / "data/transparency/anchors.json").read_bytes())["anchors"]:
        ah = json.loads((bag / f"data/transparency/anchors/{a['size']:012d}.json").read_bytes())["treehead"]
        leaf = {"schema": "custody.tlog.leaf/1", "chain": a["chain"], "length": a["length"], "head": a["head"]}
        if not check_inclusion(leaf_hash(canonical(leaf)), a["index"], a["size"],
                               [bytes.fromhex(x) for x in a["proof"]], bytes.fromhex(ah["root"])):
            problems.append(f"anchor of {a['chain']} at length {a['length']} fails against tree head {a['size']}")
    print("signatures and time-stamps need openssl:")
    print(f"  jq -cjS .statement custody-statement.json > s.bin; jq -r .signature.value custody-statement.json"
          f" | base64 -d > s.sig; openssl pkeyutl -verify -pubin -inkey data/keys/{st['signature']['key_id']}.pem"
          " -rawin -in s.bin -sigfile s.sig")
    print(f"  openssl ts -verify -digest {th_sha} -in data/transparency/treehead.tsr -token_in -CAfile tsa-root.pem")
    return problems


def main(argv):
    if len(argv) == 4 and argv[1] == "canonical":
        sys.stdout.buffer.write(canonical(json.loads(Path(argv[2]).read_bytes())[argv[3]]))
        return 0
    if len(argv) != 2:
        print(__doc__)
        return 2
    problems = check(Path(argv[1]))
    for p in problems:
        print("FAIL:", p)
    print("FAIL" if problems else "OK (now check the signatures and time-stamps with openssl, as printed)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
