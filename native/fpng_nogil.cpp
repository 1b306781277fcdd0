// A C entry point to fpng (Rich Geldreich, public domain) that Python calls through ctypes, which releases
// the GIL for the call: the `fpng` wheel's nanobind binding holds the GIL for the whole ~10 ms encode of a
// 1080p still, so encoder threads could not overlap each other or the C2PA signing and uploads.
// The encoder is fpng.cpp from the same pinned `fpng` source release as the wheel, called with the same
// arguments (flags 0), so the PNG bytes are the wheel's (checked by scripts/build_native.sh and the tests).
#include <cstdint>
#include <vector>

#include "fpng.h"

namespace {
// One output buffer per thread: reused across stills (no 6 MB allocation and page faults per still) and
// read back by the same thread right after the call, before it can encode again.
thread_local std::vector<uint8_t> g_out;
}

extern "C" {

__attribute__((visibility("default"))) int custody_fpng_abi() { return 1; }

__attribute__((visibility("default"))) void custody_fpng_init() { fpng::fpng_init(); }

__attribute__((visibility("default"))) int custody_fpng_sse41() { return fpng::fpng_cpu_supports_sse41() ? 1 : 0; }

// Encodes a packed 8-bit RGB (3) or RGBA (4) image; returns the PNG's size (0 on failure) and sets *data
// to this thread's buffer, valid until this thread's next call.
__attribute__((visibility("default"))) uint64_t custody_fpng_encode(const void* pixels, uint32_t w, uint32_t h,
                                                                     uint32_t chans, const uint8_t** data) {
  *data = nullptr;
  if (!fpng::fpng_encode_image_to_memory(pixels, w, h, chans, g_out, 0)) return 0;
  *data = g_out.data();
  return g_out.size();
}
}
