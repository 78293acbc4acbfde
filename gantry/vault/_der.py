"""The little DER (X.690) needed to write and read CMS EnvelopedData.

Only definite lengths are written; reading also accepts the constructed
(chunked) OCTET STRING encodings BER allows for encrypted content.
"""

from __future__ import annotations

from dataclasses import dataclass

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06


def tlv(tag: int, content: bytes) -> bytes:
    """One element: tag, definite length, content.

    Examples
    --------
    >>> tlv(OCTET_STRING, b"ab").hex()
    '04026162'
    >>> len(tlv(OCTET_STRING, bytes(200)))
    203
    """
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def sequence(*items: bytes) -> bytes:
    return tlv(SEQUENCE, b"".join(items))


def set_of(*items: bytes) -> bytes:
    """A SET OF, its elements sorted as DER requires."""
    return tlv(SET, b"".join(sorted(items)))


def integer(value: int) -> bytes:
    """A non-negative INTEGER.

    Examples
    --------
    >>> integer(2).hex(), integer(128).hex()
    ('020102', '02020080')
    """
    raw = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return tlv(INTEGER, raw)


def octets(data: bytes) -> bytes:
    return tlv(OCTET_STRING, data)


def oid(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER.

    Examples
    --------
    >>> oid("1.2.840.113549.1.7.3").hex()
    '06092a864886f70d010703'
    """
    parts = [int(p) for p in dotted.split(".")]
    values = [40 * parts[0] + parts[1], *parts[2:]]
    out = bytearray()
    for v in values:
        chunk = [v & 0x7F]
        v >>= 7
        while v:
            chunk.append(0x80 | (v & 0x7F))
            v >>= 7
        out.extend(reversed(chunk))
    return tlv(OID, bytes(out))


def oid_text(content: bytes) -> str:
    """The dotted text of an OBJECT IDENTIFIER's content bytes."""
    values: list[int] = []
    v = 0
    for b in content:
        v = (v << 7) | (b & 0x7F)
        if not b & 0x80:
            values.append(v)
            v = 0
    if not values:
        raise ValueError("empty OBJECT IDENTIFIER")
    first = min(values[0] // 40, 2)
    return ".".join(str(x) for x in [first, values[0] - 40 * first, *values[1:]])


@dataclass(frozen=True)
class Node:
    """One parsed element: its tag byte and content bytes."""

    tag: int
    content: bytes

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)

    def children(self) -> list[Node]:
        return parse_all(self.content)

    def as_oid(self) -> str:
        if self.tag != OID:
            raise ValueError("expected an OBJECT IDENTIFIER")
        return oid_text(self.content)

    def as_int(self) -> int:
        if self.tag != INTEGER:
            raise ValueError("expected an INTEGER")
        return int.from_bytes(self.content, "big", signed=True)

    def as_octets(self) -> bytes:
        """OCTET STRING content (or an implicitly tagged one), chunked forms joined."""
        if self.constructed:
            return b"".join(c.as_octets() for c in self.children())
        return self.content


def parse_one(data: bytes, pos: int = 0) -> tuple[Node, int]:
    """Parse the element at ``pos``; return it and the position after it."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise ValueError("high tag numbers are not used in CMS")
    first = data[pos + 1]
    pos += 2
    if first == 0x80:  # BER indefinite length: read children up to the end-of-contents
        start = pos
        while data[pos : pos + 2] != b"\x00\x00":
            _, pos = parse_one(data, pos)
        return Node(tag, data[start:pos]), pos + 2
    if first & 0x80:
        k = first & 0x7F
        length = int.from_bytes(data[pos : pos + k], "big")
        pos += k
    else:
        length = first
    end = pos + length
    if end > len(data):
        raise ValueError("truncated DER")
    return Node(tag, data[pos:end]), end


def parse_all(data: bytes) -> list[Node]:
    """Every element in ``data``, in order."""
    out = []
    pos = 0
    while pos < len(data):
        node, pos = parse_one(data, pos)
        out.append(node)
    return out
