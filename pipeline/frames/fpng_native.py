"""fpng called through ctypes, which releases the GIL for the encode.

The `fpng` wheel's nanobind binding holds the GIL for the whole encode (~10 ms a 1080p still), so encoder
threads ran one at a time and stalled C2PA signing and uploads meanwhile. `scripts/build_native.sh` builds
`native/fpng_nogil.cpp` with fpng.cpp from the same pinned fpng source release into `<venv>/lib/custody/` and
checks it gives the wheel's bytes. Where it is missing (an environment set up without the bootstrap), the
wheel is used: the same fpng.cpp called with the same arguments, so the same bytes, only without the overlap.
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import numpy as np

LIBRARY = Path(sys.prefix, "lib", "custody", "libfpng_nogil.so")
NATIVE = "custody fpng_nogil (ctypes, GIL released)"
WHEEL = "fpng wheel (nanobind, holds the GIL)"
_ABI = 1


def _load() -> ctypes.CDLL | None:
    if not LIBRARY.is_file():
        return None
    try:
        lib = ctypes.CDLL(str(LIBRARY))
    except OSError:
        return None
    if lib.custody_fpng_abi() != _ABI:
        return None
    lib.custody_fpng_encode.restype = ctypes.c_uint64
    lib.custody_fpng_encode.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32,
                                        ctypes.POINTER(ctypes.c_void_p)]
    lib.custody_fpng_init()
    return lib


_LIB = _load()
BINDING = NATIVE if _LIB is not None else WHEEL


def encode_rgb(rgb: np.ndarray) -> bytes:
    """PNG bytes of a C-contiguous uint8 H x W x 3 (RGB) or x 4 (RGBA) array; b"" if fpng refuses it."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] not in (3, 4) or not rgb.flags.c_contiguous:
        raise ValueError(f"fpng takes a C-contiguous uint8 RGB/RGBA array, not {rgb.dtype} {rgb.shape}")
    if _LIB is None:
        import fpng.fpng_ext as wheel

        return bytes(wheel.encode_ndarray(rgb))
    data = ctypes.c_void_p()
    size = _LIB.custody_fpng_encode(rgb.ctypes.data, rgb.shape[1], rgb.shape[0], rgb.shape[2], ctypes.byref(data))
    return ctypes.string_at(data, size) if size and data.value else b""
