"""The NAL syntax check on packet bytes (pure) and how its damage follows decode order to later pictures."""

from __future__ import annotations

import pytest

from pipeline.frames.bitstream import PacketSyntax, Taint, spread

AVCC = PacketSyntax(4)
ANNEXB = PacketSyntax(0)


def unit(body: bytes, size: int = 4) -> bytes:
    return len(body).to_bytes(size, "big") + body


SLICE = bytes([0x65, 0x88, 0x84, 0x00, 0x00, 0x03, 0x01, 0x7F, 0x00, 0x00, 0x03, 0x00, 0x21])  # emulation bytes


def test_clean_units_pass_in_both_framings() -> None:
    sei = bytes([0x06, 0x05, 0x10, 0xAA, 0x80])
    assert AVCC.check(unit(sei) + unit(SLICE)) is None
    assert PacketSyntax(2).check(unit(SLICE, 2)) is None
    assert ANNEXB.check(b"\x00\x00\x00\x01" + sei + b"\x00\x00\x01" + SLICE) is None
    # zeros before a start code and at the end of the packet are padding the byte-stream format allows
    assert ANNEXB.check(b"\x00\x00\x01" + sei + b"\x00\x00\x00\x00\x00\x01" + SLICE + b"\x00\x00\x00") is None
    # a recorder that writes start codes into MP4 samples: read as Annex B, as libavcodec does
    assert AVCC.check(b"\x00\x00\x00\x01" + SLICE) is None
    # a 300-byte first unit has the prefix 00 00 01 2c, like a start code; units of 100 and 600 bytes follow
    # (prefixes 00 00 00 64 and 00 00 02 58), which read as Annex B would be zeros inside a unit
    big = SLICE + bytes([0x11]) * (300 - len(SLICE))
    assert AVCC.check(unit(big) + unit(big[:100]) + unit(big + big)) is None
    assert AVCC.referenced(unit(big) + unit(big[:100])) is True


@pytest.mark.parametrize(("data", "says"), [
    (unit(SLICE[:6] + bytes(40) + SLICE[6:]), "40 zero bytes at byte 10 inside NAL unit 0"),
    (unit(SLICE) + unit(SLICE[:5] + b"\x00\x00\x02" + SLICE[5:]), "zero bytes at byte 24 inside NAL unit 1"),
    (unit(SLICE) + bytes(4) + unit(SLICE), "length 0"),
    (unit(SLICE)[:-3], "claims 13 bytes but the packet holds 10"),
    (unit(SLICE) + b"\x00\x01", "stray byte"),
    (unit(bytes([0xE5]) + SLICE[1:]), "forbidden_zero_bit"),
])
def test_length_prefixed_damage_is_named(data: bytes, says: str) -> None:
    found = AVCC.check(data)
    assert found is not None and says in found, found


@pytest.mark.parametrize(("data", "says"), [
    (b"\x00\x00\x01" + SLICE[:7] + bytes(30) + SLICE[7:], "30 zero bytes"),
    (b"\x00\x00\x01" + SLICE[:3] + b"\x00\x00\x02" + SLICE[3:], "00 00 02"),
])
def test_annexb_zeros_followed_by_data_are_damage(data: bytes, says: str) -> None:
    found = ANNEXB.check(data)
    assert found is not None and says in found, found


def test_zeros_ending_a_unit_are_padding_a_remux_keeps_but_a_zeroed_unit_is_not() -> None:
    hevc = PacketSyntax(4, "hevc")
    # trailing_zero_8bits carried into MP4 by a remux of Annex B footage; fewer zeros than a prefix after the last
    assert AVCC.check(unit(SLICE + bytes(5)) + unit(SLICE + bytes(31))) is None
    assert AVCC.check(unit(SLICE) + b"\x00\x00") is None
    assert hevc.check(unit(SLICE + bytes(31))) is None
    # more is a zeroed tail, not padding
    assert "32 zero bytes at byte 17 inside NAL unit 0, to its end" in (hevc.check(unit(SLICE + bytes(32))) or "")
    tail = AVCC.check(unit(SLICE) + unit(SLICE + bytes(300))) or ""
    assert "300 zero bytes at byte 34 inside NAL unit 1, to its end" in tail
    assert "40 zero bytes at byte 4 inside NAL unit 0" in (AVCC.check(unit(bytes(40))) or "")  # nothing but zeros
    inside = AVCC.check(unit(SLICE) + unit(SLICE[:4] + bytes(8) + SLICE)) or ""
    assert "9 zero bytes at byte 24 inside NAL unit 1" in inside
    # a recorder's mixed framing: start codes inside a length-prefixed unit begin further units
    sei = bytes([0x06, 0x05, 0x10, 0xAA, 0x80])
    assert AVCC.check(unit(sei + b"\x00\x00\x00\x01" + SLICE + b"\x00\x00\x01" + SLICE)) is None
    assert "stray byte" in (AVCC.check(unit(SLICE) + b"\x00\x07") or "")


def test_framing_comes_from_the_stream_configuration() -> None:
    avcc = bytes([1, 0x64, 0, 0x1F, 0xFF, 0xE1]) + bytes(10)
    assert PacketSyntax.for_stream("h264", avcc) == PacketSyntax(4, "h264")
    assert PacketSyntax.for_stream("h264", bytes([1, 0x64, 0, 0x1F, 0xFD, 0xE1, 0])) == PacketSyntax(2, "h264")
    assert PacketSyntax.for_stream("h264", b"\x00\x00\x00\x01\x67") == PacketSyntax(0, "h264")
    hvcc = bytearray(23)
    hvcc[0], hvcc[21] = 1, 0x0F
    assert PacketSyntax.for_stream("hevc", bytes(hvcc)) == PacketSyntax(4, "hevc")
    assert PacketSyntax.for_stream("mjpeg", b"") is None


def test_damage_taints_its_gop_in_decode_order_and_an_open_gops_leading_pictures() -> None:
    t = Taint()
    # decode order: I0 P3 B1 B2 | I6 (open GOP) B4 B5 P9 B7 B8 | I12 P13
    for pts, key, bad in [(0, True, None), (3, False, "zeros"), (1, False, None), (2, False, None),
                          (6, True, None), (4, False, None), (5, False, None), (9, False, None), (7, False, None),
                          (8, False, None), (12, True, None), (13, False, None)]:
        t.packet(pts, key, bad)
    assert t.damaged == [(3, "zeros")]
    assert t.affected == {1, 2, 3, 4, 5}  # B1, B2 follow P3 in decode order; B4, B5 may refer back past I6


def test_a_damaged_picture_nothing_may_refer_to_keeps_its_damage_to_itself() -> None:
    b_nonref = bytes([0x01]) + SLICE[1:]  # nal_ref_idc 0, non-IDR slice
    assert AVCC.referenced(unit(b_nonref)) is False and ANNEXB.referenced(b"\x00\x00\x01" + b_nonref) is False
    assert AVCC.referenced(unit(SLICE)) is True  # an IDR slice (nal_ref_idc 3)
    assert AVCC.referenced(unit(SLICE)[:5]) is True  # framing broken: cannot tell, so yes
    assert PacketSyntax(4, "hevc").referenced(unit(b_nonref)) is True  # not read for HEVC: yes
    t = Taint()
    for pts, key, bad, ref in [(0, True, None, True), (3, False, None, True), (1, False, "zeros", False),
                               (2, False, None, True), (6, True, None, True)]:
        t.packet(pts, key, bad, ref)
    assert t.affected == {1}


def test_a_flood_of_damaged_packets_is_counted_not_kept() -> None:
    from pipeline.frames.bitstream import NAMED

    t = Taint()
    for pts in range(NAMED + 500):
        t.packet(pts, True, "zeros")
    assert t.count == NAMED + 500 and len(t.damaged) == NAMED and len(t.affected) == NAMED + 500


def test_a_patched_up_frame_passes_its_errors_on_to_the_frames_predicted_from_it() -> None:
    order = [0, 3, 1, 2, 6, 4, 5, 9, 7, 8]  # I0 P3 B1 B2 | I6 B4 B5 P9 B7 B8 (decode order)
    assert spread({3}, order, {0, 6}) == {1, 2, 3, 4, 5}  # open GOP: B4, B5 may refer back past I6
    assert spread({9}, order, {0, 6}) == {7, 8, 9}
    assert spread(set(), order, {0, 6}) == set()


def test_a_packet_of_a_great_many_tiny_units_costs_no_memory_per_unit() -> None:
    """A crafted sample of 200,000 one-byte units (1 MB): the check keeps nothing per unit (a list of them took
    ~20 bytes of memory per byte of packet)."""
    import tracemalloc

    packet = unit(bytes([0x09])) * 200_000  # access unit delimiters, each a valid unit
    tracemalloc.start()
    try:
        assert AVCC.check(packet) is None and AVCC.referenced(packet) is True
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak
