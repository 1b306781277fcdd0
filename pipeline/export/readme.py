"""The bundle's README.txt: how a recipient checks it with standard tools, step by step."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pipeline.export.format import CHECKER, FILE_LIST, PROOFS, STATEMENT, TREEHEAD, TREEHEAD_TOKEN


def readme_text(bag: str, working_copies: bool, key_ids: list[str], heads: list[tuple[str, int, str]], *,
                statement_key: str = "", treehead: Any = None, gen_time: datetime | None = None,
                chains: list[dict[str, Any]] | None = None, case_ref: str = "") -> str:
    what = ("WORKING COPIES of the originals: byte-identical copies (nothing is re-encoded; the SHA-256 of each "
            "equals the original's), placed in working-copies/ and named WORKING-COPY so they are not mistaken "
            "for the exhibits themselves." if working_copies else
            "the ORIGINALS exactly as stored (byte for byte), in originals/.")
    keys = "\n".join(f"    {k}" for k in key_ids)
    chain_lines = "\n".join(f"    {ref}: {n} events, last event hash {h}" for ref, n, h in heads)
    first = heads[0][0].replace("/", "_") if heads else "JB_1"
    kid = key_ids[0] if key_ids else "<key id>"
    th_sha = treehead.sha256.hex() if treehead is not None else "<treehead_sha256>"
    stamped = (f"time-stamped by an RFC 3161 authority at {gen_time:%Y-%m-%d %H:%M:%S} UTC" if gen_time
               else "NOT time-stamped (no time-stamp authority was reachable)")
    size = treehead.size if treehead is not None else "?"
    n_chains = len(chains or [])
    return f"""EVIDENCE BUNDLE {bag}
{'=' * (16 + len(bag))}

This is a BagIt bag (RFC 8493). The payload (data/) holds, for each exhibit,
{what}
It also holds derived objects (stills, thumbnails, metadata), the complete
signed custody log of each exhibit (every event document exactly as stored,
with the Ed25519 public key(s) that signed them), the case log of case
{case_ref} (data/case/log/: which exhibits the case holds), proofs from the
custody transparency log (data/transparency/) and a report (data/report/
report.html and report.pdf). data/bundle.json maps each payload file to the
object and custody event it comes from.

{STATEMENT} is the sender's SIGNED STATEMENT of what this bundle holds: the
case, each exhibit with its chain length and last event hash, the case log's
length and head, the SHA-256 of {FILE_LIST} (which lists every other file of
the bag with its SHA-256), the recipient, the reason, who built it and when,
and the transparency-log tree head (size {size}) that proves every chain head
here existed; that tree head is {stamped}.
It is signed by key {statement_key or kid}.

WHO SIGNED IT: confirm this key id with the sender by a separate channel (phone,
letter) before relying on anything here. A bundle can only prove it was signed
by these keys (SHA-256 of each raw Ed25519 public key):
{keys}
Custody chains at the time of export:
{chain_lines}

CHECKING IT WITHOUT THE CUSTODY SOFTWARE (from inside the unzipped {bag}/)
1. Files. With the standard BagIt validator (pip install bagit):
       bagit.py --validate .
   or with coreutils:
       sha256sum -c tagmanifest-sha256.txt
       sha256sum -c manifest-sha256.txt
       sha256sum -c {FILE_LIST}         # the signed list: every file but 4
   Every line must say OK. {FILE_LIST} itself is pinned by the statement:
       sha256sum {FILE_LIST}            # = statement.files.sha256 in {STATEMENT}

2. The statement's signature (openssl 3; jq prints the canonical JSON: keys
   sorted, no spaces, UTF-8; python3 {CHECKER} canonical FILE FIELD does too):
       jq -cjS .statement {STATEMENT} > statement.bin
       jq -r .signature.value {STATEMENT} | base64 -d > statement.sig
       openssl pkeyutl -verify -pubin -inkey data/keys/{statement_key or kid}.pem \\
           -rawin -in statement.bin -sigfile statement.sig
   It must print "Signature Verified Successfully". The key file is in the
   bundle; what makes it trustworthy is only that its id matches the one the
   sender confirmed:
       openssl pkey -pubin -in data/keys/{statement_key or kid}.pem -outform DER | tail -c 32 | sha256sum

3. One event's hash and signature (any event, e.g. the first of {heads[0][0] if heads else 'an exhibit'}):
       E=data/exhibits/{first}/custody/events/00000000.json
       jq -cjS .event $E > event.bin
       sha256sum event.bin                 # = "event_sha256" in $E
       jq -r .signature.value $E | base64 -d > event.sig
       openssl pkeyutl -verify -pubin -inkey data/keys/$(jq -r .signature.key_id $E).pem \\
           -rawin -in event.bin -sigfile event.sig
   Each event's prev_hash is the previous event's event_sha256 (64 zeros for
   the first), so one verified head vouches for the whole chain before it.

4. The time-stamp (RFC 3161). Get the time-stamp authority's root certificate
   from the authority itself (or from the sender, confirming its fingerprint),
   not from this bundle, then:
       jq -cjS .treehead {TREEHEAD} | sha256sum     # = treehead_sha256 below
       openssl ts -verify -digest {th_sha} \\
           -in {TREEHEAD_TOKEN} -token_in -CAfile tsa-root.pem
       openssl ts -reply -in {TREEHEAD_TOKEN} -token_in -text   # the time
   "Verification: OK" means the authority signed that tree head at that time.
   Earlier heads in data/transparency/anchors/ are checked the same way.

5. Inclusion proofs ({PROOFS}, {n_chains} chains): each chain head is a leaf
   SHA-256(0x00 || canonical JSON of {{"chain","head","length","schema"}}) of the
   RFC 9162 Merkle tree whose root the signed tree head holds. The script
       python3 {CHECKER} .
   (Python 3 standard library only, short enough to read) recomputes every event
   hash and link, every leaf and inclusion proof against the tree head root,
   the anchors, and the signed file list; it prints the openssl commands for
   the signatures and time-stamps (steps 2-4), which need a crypto library.

WITH THE CUSTODY SOFTWARE all of this is one command:
       custody verify {bag}.zip --key-id {statement_key or kid} --tsa-root tsa-root.pem
It exits non-zero unless the signer is one you trust (--key-id, --trusted-key,
or your own trusted keys), and tells you if you have already seen a newer
bundle of this case (this one is then superseded).

The export itself is recorded afterwards as an `exported` event in each
exhibit's custody log and a `bundle_exported` entry in the case log (with this
bundle's SHA-256), so it is not inside the bundle.
"""
