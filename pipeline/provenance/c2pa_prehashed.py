"""Signing a PNG whose SHA-256 is already known, without c2pa reading it back (data-hashed embedding).

c2pa's `Builder.sign` reads and rewrites the whole file through Python stream callbacks (~410 for a
1.3 MB still, each one taking the GIL back from the decoding and encoding threads: 3-5 ms a still in a
run). A PNG's manifest is one `caBX` chunk after IHDR, and its `c2pa.hash.data` assertion hashes every
other byte, which is the PNG exactly as the encoder wrote it. So this asks c2pa for a placeholder chunk of
the final size, has it sign a data hash that is the encoder's SHA-256 with the chunk's range excluded,
and splices the signed chunk in after IHDR: the layout, assertion and hash `sign` writes (the tests
compare them), in one native call of ~1 ms with the GIL released.

c2pa-python 0.38 does not wrap these two functions of its C library, so they are declared here, for the
library versions they were checked against only (`SDK_VERSIONS`); `Embedder` validates a run's first
file signed this way in full before it trusts the path, and otherwise signs the ordinary way.
"""

from __future__ import annotations

import ctypes
import functools
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
AFTER_IHDR = 8 + 4 + 4 + 13 + 4  # signature, then IHDR's length, type, 13 bytes of data and CRC
#: c2pa C library versions whose data-hashed functions were checked to give what `sign` gives
SDK_VERSIONS = frozenset({"0.91.3"})
_Bytes = ctypes.POINTER(ctypes.c_ubyte)
log = logging.getLogger(__name__)


class PrehashedUnavailable(Exception):
    """This c2pa cannot sign from a known hash (another library version, or a file that is not a plain PNG)."""


@functools.cache
def _lib() -> Any:
    """The C functions, declared on a handle of our own (c2pa-python's declarations stay as they are)."""
    import c2pa
    from c2pa import c2pa as binding

    version = c2pa.sdk_version()
    if version not in SDK_VERSIONS:
        raise PrehashedUnavailable(f"c2pa library {version} is not one the data-hashed path was checked with")
    lib = ctypes.CDLL(binding._lib._name)
    lib.c2pa_builder_data_hashed_placeholder.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p,
                                                        ctypes.POINTER(_Bytes)]
    lib.c2pa_builder_data_hashed_placeholder.restype = ctypes.c_int64
    lib.c2pa_builder_sign_data_hashed_embeddable.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p,
                                                            ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(_Bytes)]
    lib.c2pa_builder_sign_data_hashed_embeddable.restype = ctypes.c_int64
    lib.c2pa_free.argtypes = [ctypes.c_void_p]
    lib.c2pa_error.restype = ctypes.c_void_p
    return lib


def available() -> bool:
    try:
        _lib()
    except (PrehashedUnavailable, ImportError, OSError, AttributeError):
        return False
    return True


def _take(lib: Any, n: int, ptr: Any, what: str) -> bytes:
    """The bytes a call returned (freed on the native side), or its error."""
    if n < 0 or not ptr:
        msg = lib.c2pa_error()
        text = ctypes.string_at(msg).decode(errors="replace") if msg else "no message"
        if msg:
            lib.c2pa_free(msg)
        raise RuntimeError(f"c2pa {what} failed: {text}")
    try:
        return ctypes.string_at(ptr, n)
    finally:
        lib.c2pa_free(ptr)


def png_chunks(png: bytes | memoryview) -> Iterator[tuple[bytes, int, int]]:
    """(type, offset, whole length with its length, type and CRC fields) of each chunk after the signature;
    reads the chunk headers only."""
    view, pos = memoryview(png), 8
    while pos + 8 <= len(view):
        size = 12 + int.from_bytes(view[pos:pos + 4], "big")
        yield bytes(view[pos + 4:pos + 8]), pos, size
        pos += size


def sign_png(builder: Callable[[], Any], signer: Any, png: bytes, sha256: bytes) -> tuple[bytes, bytes]:
    """(`png` with a signed manifest chunk after IHDR, the manifest store in it); `sha256` must be the
    digest of `png` as given.

    `builder()` makes the c2pa.Builder, used up here once the PNG is known to suit; `signer` (a c2pa.Signer)
    may sign other files at the same time."""
    if not png.startswith(PNG_SIGNATURE) or png[12:16] != b"IHDR" or int.from_bytes(png[8:12], "big") != 13:
        raise PrehashedUnavailable("not a PNG that starts with a 13-byte IHDR chunk")
    if any(kind == b"caBX" for kind, _, _ in png_chunks(png)):  # c2pa's own signing adds to that store
        raise PrehashedUnavailable("the PNG already carries a C2PA manifest")
    lib = _lib()
    reserve = signer.reserve_size()
    with builder() as b, b._exclusive_native_call(), signer._native_call():
        ptr = _Bytes()
        placeholder = _take(lib, lib.c2pa_builder_data_hashed_placeholder(b._handle, reserve, b"image/png",
                                                                          ctypes.byref(ptr)), ptr, "placeholder")
        data_hash = {"exclusions": [{"start": AFTER_IHDR, "length": len(placeholder)}], "name": "jumbf manifest",
                     "alg": "sha256", "hash": list(sha256), "pad": []}  # bytes as JSON arrays (serde)
        ptr = _Bytes()
        chunk = _take(lib, lib.c2pa_builder_sign_data_hashed_embeddable(
            b._handle, signer._handle, json.dumps(data_hash).encode(), b"image/png", None,
            ctypes.byref(ptr)), ptr, "data-hashed signing")
    if len(chunk) != len(placeholder) or chunk[4:8] != b"caBX":
        raise RuntimeError(f"c2pa gave a {len(chunk)}-byte manifest chunk for a {len(placeholder)}-byte placeholder")
    return b"".join((png[:AFTER_IHDR], chunk, png[AFTER_IHDR:])), chunk[8:-4]


class PrehashedPath:
    """One run's use of this path: unproven until its first file signed so validates in full, then trusted;
    off for good once that fails or the library is not one it was checked with (files are then signed the
    ordinary way by the caller)."""

    def __init__(self, check: Callable[[bytes, str], str | None]) -> None:
        self._check = check  # (signed file, SHA-256 it must have without its manifest) -> None, or what failed
        self._lock = threading.Lock()
        self._off = False
        self._files = 0  # signed so far; the first one was validated in full

    @property
    def files(self) -> int:
        """Files signed from their hash so far."""
        with self._lock:
            return self._files

    def sign(self, builder: Callable[[], Any], signer: Any, png: bytes, sha256: str) -> tuple[bytes, bytes] | None:
        """`sign_png`, or None where this path is not (or no longer) to be used."""
        with self._lock:
            off, proven = self._off, self._files > 0
        if off or not (proven or available()):
            self._turn_off()
            return None
        try:
            signed, manifest = sign_png(builder, signer, png, bytes.fromhex(sha256))
        except PrehashedUnavailable:
            return None
        if not proven:  # until one passes, every file signed this way is validated in full
            failed = self._check(signed, sha256)
            if failed is not None:
                log.warning("signing PNGs from their hash failed validation (%s); signing them the ordinary way",
                            failed)
                self._turn_off()
                return None
        with self._lock:
            self._files += 1
        return signed, manifest

    def _turn_off(self) -> None:
        with self._lock:
            self._off = True
