"""The bundle's README.txt: how a recipient checks it with standard tools, step by step."""

from __future__ import annotations


def readme_text(bag: str, working_copies: bool, key_ids: list[str], heads: list[tuple[str, int, str]]) -> str:
    what = ("WORKING COPIES of the originals: byte-identical copies (nothing is re-encoded; the SHA-256 of each "
            "equals the original's), placed in working-copies/ and named WORKING-COPY so they are not mistaken "
            "for the exhibits themselves." if working_copies else
            "the ORIGINALS exactly as stored (byte for byte), in originals/.")
    keys = "\n".join(f"    {k}" for k in key_ids)
    chains = "\n".join(f"    {ref}: {n} events, last event hash {h}" for ref, n, h in heads)
    return f"""EVIDENCE BUNDLE {bag}
{'=' * (16 + len(bag))}

This is a BagIt bag (RFC 8493). The payload (data/) holds, for each exhibit,
{what}
It also holds derived objects (stills, thumbnails, metadata), the complete
signed custody log of each exhibit (every event document exactly as stored,
with the Ed25519 public key(s) that signed them) and a report (data/report/
report.html and report.pdf). data/bundle.json maps each payload file to the
object and custody event it comes from.

CHECKING IT WITHOUT THE CUSTODY SOFTWARE
1. Unzip, then with the standard BagIt validator (pip install bagit):
       bagit.py --validate {bag}
2. Or with coreutils only:
       cd {bag}
       sha256sum -c tagmanifest-sha256.txt     # bagit.txt, bag-info.txt, this file, manifest
       sha256sum -c manifest-sha256.txt        # every payload file
   Every line must say OK. Also check that no file under data/ is missing
   from manifest-sha256.txt (an added file would not be reported by sha256sum).
3. Compare each SHA-256 with the custody record: in data/exhibits/*/custody/
   events/*.json, objects[].sha256 of the event that recorded the object.

CHECKING THE CUSTODY LOG
Each event document is {{"event", "event_sha256", "signature"}}. event_sha256 is
the SHA-256 of the canonical JSON of "event" (keys sorted, separators "," and
":", UTF-8 without escaping); each event's prev_hash is the previous event's
event_sha256 (64 zeros for the first); signature.value is the base64 Ed25519
signature of the same canonical bytes by the key whose id is the SHA-256 of its
raw 32-byte public key. With the custody software, all of this (and steps 1-3)
is done by:
       custody verify <this bundle>.zip

The signing key(s) inside this bundle have these key ids (SHA-256 of the raw
public key). A bundle can only prove it was signed by these keys: confirm the
ids with the sender by a separate channel (phone, letter) before relying on it.
{keys}
Custody chains at the time of export:
{chains}
The export itself is recorded afterwards as an `exported` event in each
exhibit's custody log (with this bundle's SHA-256), so it is not inside the
bundle.
"""
