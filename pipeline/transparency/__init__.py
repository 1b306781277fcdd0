"""Transparency log and trusted time: RFC 6962 Merkle tree, signed tree heads, RFC 3161 time-stamps.

Pure building blocks with no knowledge of the store: `merkle` (hashing and proofs), `treehead` (the signed
tree head document), `tsa` (RFC 3161 client and offline token check), `tsa_server` (a local time-stamp
authority standing in for a real one, as the emulator stands in for cameras).
"""
