"""H.264 (ISO/IEC 14496-10) NAL units: header legality, slice headers, SPS/PPS, avcC.

Access-unit boundaries follow 7.4.1.2.3: a new picture starts at an AUD/SPS/PPS/SEI after a slice, or at a
slice whose first_mb_in_slice is 0 (cameras never use arbitrary slice order or interlaced field pairs).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.recovery.bitstream import BitReader, unescape
from pipeline.recovery.nal import NalInfo, Syntax, safe, skip_scaling_list

SLICE, IDR, SEI, SPS, PPS, AUD, END_SEQ, END_STREAM, FILLER, SPS_EXT = 1, 5, 6, 7, 8, 9, 10, 11, 12, 13
_LEGAL = {SLICE, IDR, SEI, SPS, PPS, AUD, END_SEQ, END_STREAM, FILLER, SPS_EXT}
_OPENS_AU = {SEI, SPS, PPS, AUD, SPS_EXT}
_REF_IDC_ZERO = {SEI, AUD, END_SEQ, END_STREAM, FILLER}  # 7.4.1: nal_ref_idc shall be 0
_REF_IDC_NONZERO = {IDR, SPS, PPS}  # 7.4.1: nal_ref_idc shall not be 0
_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}
_KNOWN_PROFILES = {66, 77, 88} | _HIGH_PROFILES
_SLICE_TYPE = {0: 0, 1: 1, 2: 2, 3: 0, 4: 2}  # P, B, I, SP->P, SI->I


@dataclass
class H264(Syntax):
    name: str = "h264"
    header_len: int = 1

    def nal_type(self, first_byte: int) -> int:
        return first_byte & 0x1F

    def is_param_set_type(self, nal_type: int) -> bool:
        return nal_type in (SPS, PPS)

    def opening_bytes(self) -> bytes:
        return bytes(b for b in range(256) if self.header_ok(b) and b & 0x1F in _OPENS_AU | {SLICE, IDR})

    def legal_header(self, nal: bytes) -> bool:
        return len(nal) >= 1 and self.header_ok(nal[0])

    def header_ok(self, b0: int) -> bool:
        t, ref_idc = b0 & 0x1F, (b0 >> 5) & 3
        if b0 & 0x80 or t not in _LEGAL:
            return False
        return not (t in _REF_IDC_ZERO and ref_idc) and not (t in _REF_IDC_NONZERO and not ref_idc)

    @safe
    def inspect(self, nal: bytes) -> NalInfo | None:
        if not nal or not self.header_ok(nal[0]):
            return None
        t = nal[0] & 0x1F
        if t not in (SLICE, IDR):
            return NalInfo(t, vcl=False, opens_au=t in _OPENS_AU, param_set=t in (SPS, PPS))
        r = self._slice_reader(nal)
        first_mb = r.ue()
        raw_type = r.ue()
        pps_id = r.ue()
        if raw_type > 9 or pps_id not in self.pps:
            return None
        slice_type = _SLICE_TYPE[raw_type % 5]
        if t == IDR and slice_type != 2:
            return None  # an IDR picture is intra only
        pps = self.pps[pps_id]
        sps = self.sps.get(pps["sps_id"])
        poc_lsb = frame_num = None
        if sps is not None:
            if sps["separate_colour_plane"]:
                r.skip(2)
            frame_num = r.u(sps["log2_max_frame_num"])
            if not sps["frame_mbs_only"] and r.flag():  # field_pic_flag
                r.skip(1)  # bottom_field_flag
            if t == IDR:
                r.ue()  # idr_pic_id
            if sps["poc_type"] == 0:
                poc_lsb = r.u(sps["log2_max_poc_lsb"])
        return NalInfo(t, vcl=True, opens_au=False, first_in_pic=first_mb == 0, key=t == IDR, poc_reset=t == IDR,
                       slice_type=slice_type, poc_lsb=poc_lsb, frame_num=frame_num, ref=bool(nal[0] & 0x60))

    @safe
    def learn(self, nal: bytes) -> str | None:
        t = nal[0] & 0x1F
        if t == SPS:
            sps = parse_sps(nal)
            if sps is None:
                return None
            self.sps[sps["id"]] = sps
            self.raw.setdefault(("sps", sps["id"]), bytes(nal))
            return "sps"
        if t == PPS:
            r = BitReader(unescape(nal[1:16]))
            pps_id, sps_id = r.ue(), r.ue()
            if pps_id > 255 or sps_id > 31:
                return None
            self.pps[pps_id] = {"id": pps_id, "sps_id": sps_id}
            self.raw.setdefault(("pps", pps_id), bytes(nal))
            return "pps"
        return None


@safe
def parse_sps(nal: bytes) -> dict | None:
    """The SPS fields slice headers depend on, plus what avcC's header repeats."""
    r = BitReader(unescape(nal[1:]))
    profile, constraints, level = r.u(8), r.u(8), r.u(8)
    sps_id = r.ue()
    if profile not in _KNOWN_PROFILES or sps_id > 31:
        return None
    chroma, depth_l, depth_c, separate = 1, 8, 8, False
    if profile in _HIGH_PROFILES:
        chroma = r.ue()
        if chroma > 3:
            return None
        if chroma == 3:
            separate = r.flag()
        depth_l, depth_c = r.ue() + 8, r.ue() + 8
        r.skip(1)  # qpprime_y_zero_transform_bypass_flag
        if r.flag():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if r.flag():
                    skip_scaling_list(r, 16 if i < 6 else 64)
    log2_max_frame_num = r.ue() + 4
    poc_type = r.ue()
    log2_max_poc_lsb = 0
    if poc_type == 0:
        log2_max_poc_lsb = r.ue() + 4
    elif poc_type == 1:
        r.skip(1)
        r.se()
        r.se()
        for _ in range(r.ue()):
            r.se()
    elif poc_type != 2:
        return None
    max_refs = r.ue()
    r.skip(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs, height_units = r.ue() + 1, r.ue() + 1
    frame_mbs_only = r.flag()
    if log2_max_frame_num > 16 or log2_max_poc_lsb > 16 or max_refs > 16:
        return None
    return {"id": sps_id, "profile": profile, "constraints": constraints, "level": level, "chroma": chroma,
            "depth_luma": depth_l, "depth_chroma": depth_c, "separate_colour_plane": separate,
            "log2_max_frame_num": log2_max_frame_num, "poc_type": poc_type, "log2_max_poc_lsb": log2_max_poc_lsb,
            "frame_mbs_only": frame_mbs_only, "width_mbs": width_mbs,
            "height_mbs": height_units * (1 if frame_mbs_only else 2)}


def parse_avcc(avcc: bytes) -> tuple[int, list[bytes]]:
    """(NAL length size, [SPS..., PPS...]) from an AVCDecoderConfigurationRecord."""
    if len(avcc) < 7 or avcc[0] != 1:
        raise ValueError("not an avcC record (configurationVersion is not 1)")
    length_size = (avcc[4] & 3) + 1
    units: list[bytes] = []
    pos = 5
    for mask in (0x1F, 0xFF):  # numOfSequenceParameterSets (5 bits), then numOfPictureParameterSets
        count, pos = avcc[pos] & mask, pos + 1
        for _ in range(count):
            n = int.from_bytes(avcc[pos:pos + 2], "big")
            units.append(bytes(avcc[pos + 2:pos + 2 + n]))
            pos += 2 + n
    return length_size, units


def build_avcc(sps_list: list[bytes], pps_list: list[bytes], length_size: int = 4) -> bytes:
    """An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1) from in-band parameter sets."""
    first = sps_list[0]
    out = bytearray([1, first[1], first[2], first[3], 0xFC | (length_size - 1), 0xE0 | len(sps_list)])
    for s in sps_list:
        out += len(s).to_bytes(2, "big") + s
    out.append(len(pps_list))
    for p in pps_list:
        out += len(p).to_bytes(2, "big") + p
    sps = parse_sps(first)
    if sps and sps["profile"] in (100, 110, 122, 144):
        out += bytes([0xFC | sps["chroma"], 0xF8 | (sps["depth_luma"] - 8), 0xF8 | (sps["depth_chroma"] - 8), 0])
    return bytes(out)
