"""The little DER the time-stamp client needs: encode a TimeStampReq, and put a token's certificate set in DER order.

Why the second: RFC 5652 SignedData carries its certificates as a SET OF, which DER sorts by encoding.
OpenSSL-based TSAs (including `openssl ts -reply` with a chain configured) write them in chain order, and
`rfc3161-client` parses strictly, so it refuses such a token outright. The certificates are not covered by
the CMS signature (it signs the signed attributes, which hold the TSTInfo's digest), so sorting them changes
nothing that is verified; the stored token stays as the TSA sent it and is sorted again at each check.
"""

from __future__ import annotations


def tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def integer(v: int) -> bytes:
    return tlv(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big"))  # +1 byte keeps the sign bit clear


def oid(dotted: str) -> bytes:
    first, second, *rest = (int(p) for p in dotted.split("."))
    out = bytearray()
    for arc in [first * 40 + second, *rest]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, bytes(out))


def read_element(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, body start, body end) of the element at pos; definite lengths and one-byte tags only."""
    if pos + 2 > end:
        raise ValueError("truncated DER element")
    tag, first = buf[pos], buf[pos + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte DER tags are not expected here")
    if first < 0x80:
        start, length = pos + 2, first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or pos + 2 + n > end:
            raise ValueError("indefinite or oversized DER length")
        start, length = pos + 2 + n, int.from_bytes(buf[pos + 2:pos + 2 + n], "big")
    if start + length > end:
        raise ValueError("DER element runs past its parent")
    return tag, start, start + length


def children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, element start, body start, element end) of each child in buf[start:end]."""
    out, pos = [], start
    while pos < end:
        tag, body, stop = read_element(buf, pos, end)
        out.append((tag, pos, body, stop))
        pos = stop
    return out


def sort_token_certificates(token: bytes) -> bytes:
    """The token with SignedData.certificates in DER SET OF order; unchanged if it is not shaped as expected."""
    try:
        tag, body, end = read_element(token, 0, len(token))  # ContentInfo
        kids = children(token, body, end)
        if tag != 0x30 or len(kids) != 2 or kids[1][0] != 0xA0:
            return token
        inner = children(token, kids[1][2], kids[1][3])  # [0] EXPLICIT SignedData
        if len(inner) != 1 or inner[0][0] != 0x30:
            return token
        fields = children(token, inner[0][2], inner[0][3])
        certs = next((f for f in fields if f[0] == 0xA0), None)  # certificates [0] IMPLICIT SET OF
        if certs is None:
            return token
        elements = [token[s:e] for _, s, _, e in children(token, certs[2], certs[3])]
    except ValueError:
        return token
    width = max((len(e) for e in elements), default=0)
    ordered = sorted(elements, key=lambda e: e.ljust(width, b"\0"))  # X.690 §11.6: shorter ones padded with 0s
    return token[:certs[2]] + b"".join(ordered) + token[certs[3]:]  # same total length: no header changes
