"""H.265 (ITU-T H.265) NAL units: header legality, slice segment headers, VPS/SPS/PPS, hvcC.

A new picture starts at a VPS/SPS/PPS/AUD/prefix SEI after a slice, or at a slice segment whose
first_slice_segment_in_pic_flag is set (7.4.2.4.4). Only the base layer is accepted (cameras are single-layer).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.recovery.bitstream import BitReader, unescape
from pipeline.recovery.nal import NalInfo, Syntax, safe

VPS, SPS, PPS, AUD, EOS, EOB, FD, SEI_PREFIX, SEI_SUFFIX = 32, 33, 34, 35, 36, 37, 38, 39, 40
_VCL = set(range(0, 10)) | set(range(16, 22))
_IRAP = range(16, 24)
_IDR = (19, 20)
_POC_RESET = (16, 17, 18, 19, 20)  # BLA and IDR: PicOrderCntMsb is 0
_LEGAL = _VCL | set(range(VPS, SEI_SUFFIX + 1))
_OPENS_AU = {VPS, SPS, PPS, AUD, SEI_PREFIX}
_SLICE_TYPE = {0: 1, 1: 0, 2: 2}  # B, P, I -> normalised P=0, B=1, I=2


@dataclass
class H265(Syntax):
    name: str = "hevc"
    header_len: int = 2

    def nal_type(self, first_byte: int) -> int:
        return (first_byte >> 1) & 0x3F

    def is_param_set_type(self, nal_type: int) -> bool:
        return nal_type in (VPS, SPS, PPS)

    @property
    def ready(self) -> bool:
        return bool(self.vps and self.sps and self.pps)

    def opening_bytes(self) -> bytes:
        return bytes(b for b in range(0, 256, 2) if self.header_ok(b, 1) and (b >> 1) in _OPENS_AU | _VCL)

    def legal_header(self, nal: bytes) -> bool:
        return len(nal) >= 2 and self.header_ok(nal[0], nal[1])

    @staticmethod
    def header_ok(b0: int, b1: int) -> bool:
        t, layer, tid1 = (b0 >> 1) & 0x3F, ((b0 & 1) << 5) | (b1 >> 3), b1 & 7
        if b0 & 0x80 or t not in _LEGAL or layer != 0 or tid1 == 0:
            return False
        return not (tid1 != 1 and (t in _IRAP or t in (VPS, SPS, EOS, EOB)))  # these have TemporalId 0

    @safe
    def inspect(self, nal: bytes) -> NalInfo | None:
        if len(nal) < 2 or not self.header_ok(nal[0], nal[1]):
            return None
        t = (nal[0] >> 1) & 0x3F
        if t not in _VCL:
            return NalInfo(t, vcl=False, opens_au=t in _OPENS_AU, param_set=t in (VPS, SPS, PPS))
        r = self._slice_reader(nal)
        first = r.flag()
        if t in _IRAP:
            r.skip(1)  # no_output_of_prior_pics_flag
        pps_id = r.ue()
        pps = self.pps.get(pps_id)
        if pps is None:
            return None
        sps = self.sps.get(pps["sps_id"])
        if not first:  # the rest of a later segment's header needs PicSizeInCtbsY; its picture is known anyway
            return NalInfo(t, vcl=True, opens_au=False, first_in_pic=False, key=t in _IRAP,
                           ref=not sub_layer_non_ref(t))
        r.skip(pps["extra_bits"])
        raw_type = r.ue()
        if raw_type > 2 or (t in _IRAP and raw_type != 2):
            return None
        poc_lsb = None
        if sps is not None:
            if pps["output_flag_present"]:
                r.skip(1)
            if sps["separate_colour_plane"]:
                r.skip(2)
            if t not in _IDR:
                poc_lsb = r.u(sps["log2_max_poc_lsb"])
        return NalInfo(t, vcl=True, opens_au=False, first_in_pic=True, key=t in _IRAP, poc_reset=t in _POC_RESET,
                       slice_type=_SLICE_TYPE[raw_type], poc_lsb=poc_lsb, ref=not sub_layer_non_ref(t))

    @safe
    def learn(self, nal: bytes) -> str | None:
        t = (nal[0] >> 1) & 0x3F
        if t == VPS:
            vps_id = nal[2] >> 4
            self.vps[vps_id] = bytes(nal)
            self.raw.setdefault(("vps", vps_id), bytes(nal))
            return "vps"
        if t == SPS:
            sps = parse_sps(nal)
            if sps is None:
                return None
            self.sps[sps["id"]] = sps
            self.raw.setdefault(("sps", sps["id"]), bytes(nal))
            return "sps"
        if t == PPS:
            r = BitReader(unescape(nal[2:16]))
            pps_id, sps_id = r.ue(), r.ue()
            if pps_id > 63 or sps_id > 15:
                return None
            r.skip(1)  # dependent_slice_segments_enabled_flag
            self.pps[pps_id] = {"id": pps_id, "sps_id": sps_id, "output_flag_present": r.flag(),
                                "extra_bits": r.u(3)}
            self.raw.setdefault(("pps", pps_id), bytes(nal))
            return "pps"
        return None


def sub_layer_non_ref(t: int) -> bool:
    return t < 16 and t % 2 == 0  # TRAIL_N, TSA_N, STSA_N, RADL_N, RASL_N


@safe
def parse_sps(nal: bytes) -> dict | None:
    """The SPS fields slice headers depend on, plus the general profile/tier/level hvcC repeats."""
    r = BitReader(unescape(nal[2:]))
    r.skip(4)  # sps_video_parameter_set_id
    max_sub_layers = r.u(3) + 1
    nesting = r.flag()
    ptl = r.u(2 + 1 + 5 + 32 + 48 + 8)  # general profile_tier_level: 96 bits, copied into hvcC as is
    sub_profile, sub_level = [], []
    for _ in range(max_sub_layers - 1):
        sub_profile.append(r.flag())
        sub_level.append(r.flag())
    if max_sub_layers > 1:
        r.skip(2 * (9 - max_sub_layers))
    for p, lv in zip(sub_profile, sub_level, strict=True):
        r.skip((88 if p else 0) + (8 if lv else 0))
    sps_id = r.ue()
    chroma = r.ue()
    if sps_id > 15 or chroma > 3:
        return None
    separate = chroma == 3 and r.flag()
    width, height = r.ue(), r.ue()
    if r.flag():  # conformance_window_flag
        for _ in range(4):
            r.ue()
    depth_l, depth_c = r.ue() + 8, r.ue() + 8
    log2_max_poc_lsb = r.ue() + 4
    if log2_max_poc_lsb > 16 or depth_l > 16 or depth_c > 16 or not (0 < width < 65536 and 0 < height < 65536):
        return None
    return {"id": sps_id, "ptl": ptl, "max_sub_layers": max_sub_layers, "temporal_id_nested": nesting,
            "chroma": chroma, "separate_colour_plane": separate, "width": width, "height": height,
            "depth_luma": depth_l, "depth_chroma": depth_c, "log2_max_poc_lsb": log2_max_poc_lsb}


def parse_hvcc(hvcc: bytes) -> tuple[int, list[bytes]]:
    """(NAL length size, [parameter-set NAL units...]) from an HEVCDecoderConfigurationRecord."""
    if len(hvcc) < 23 or hvcc[0] != 1:
        raise ValueError("not an hvcC record (configurationVersion is not 1)")
    length_size = (hvcc[21] & 3) + 1
    units: list[bytes] = []
    pos = 23
    for _ in range(hvcc[22]):
        count = int.from_bytes(hvcc[pos + 1:pos + 3], "big")
        pos += 3
        for _ in range(count):
            n = int.from_bytes(hvcc[pos:pos + 2], "big")
            units.append(bytes(hvcc[pos + 2:pos + 2 + n]))
            pos += 2 + n
    return length_size, units


def build_hvcc(vps: list[bytes], sps_list: list[bytes], pps: list[bytes], length_size: int = 4) -> bytes:
    """An HEVCDecoderConfigurationRecord (ISO/IEC 14496-15 8.3.3.1) from in-band parameter sets."""
    sps = parse_sps(sps_list[0])
    if sps is None:
        raise ValueError("the in-band SPS does not parse")
    out = bytearray([1]) + sps["ptl"].to_bytes(12, "big")
    out += bytes([0xF0, 0x00,  # reserved + min_spatial_segmentation_idc 0 (unknown)
                  0xFC,  # reserved + parallelismType 0 (unknown)
                  0xFC | sps["chroma"], 0xF8 | (sps["depth_luma"] - 8), 0xF8 | (sps["depth_chroma"] - 8),
                  0, 0,  # avgFrameRate unknown
                  (sps["max_sub_layers"] << 3) | (int(sps["temporal_id_nested"]) << 2) | (length_size - 1)])
    arrays = [(VPS, vps), (SPS, sps_list), (PPS, pps)]
    out.append(len(arrays))
    for t, units in arrays:
        out.append(0x80 | t)  # array_completeness: all parameter sets of this type are in the record
        out += len(units).to_bytes(2, "big")
        for u in units:
            out += len(u).to_bytes(2, "big") + u
    return bytes(out)
