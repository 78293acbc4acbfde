"""The fast path of ingest: a struct-based DICOM tag walker.

:func:`read_fast` reads one file's header with :mod:`struct` into plain
tuples, without building pydicom objects: one ``elements`` row per element at
any depth and the text of the top-level columns of ``instances``.  It reads
the file in small chunks and never reads pixel bytes: it seeks over (7FE0,0010)
*Pixel Data* (and the float variants), walking only the item headers of
encapsulated pixel data, and carries on with any elements after it.

It must never be less correct than pydicom.  Whatever it does not reproduce
exactly it raises :class:`~gantry.ingest._values.NeedsPydicom` for, and the
caller re-reads the file with the reference reader.  That covers character
sets other than the default, ISO_IR 100 and ISO_IR 192; text with ISO 2022
escapes or invalid UTF-8; transfer syntaxes pydicom treats specially
(registered private syntaxes) and datasets whose VR encoding contradicts the
transfer syntax; unknown or invalid VRs; elements out of order or repeated;
explicit VR UN values that pydicom re-types as a sequence or an ambiguous VR;
ambiguous VRs it cannot resolve the way pydicom does; malformed lengths,
delimiters or items; command-set (0000,eeee) elements; invalid DS / IS
strings; and any truncation (the reference reader decides the skip reason).

Examples
--------
>>> from pathlib import Path
>>> import pydicom
>>> from gantry.ingest._walker import Rows, read_fast
>>> ct = Path(pydicom.__file__).parent / "data" / "test_files" / "CT_small.dcm"
>>> rows = Rows()
>>> info = read_fast(str(ct), ct.stat().st_size, rows)
>>> info.transfer_syntax, info.pixel_offset, info.pixel_length
('1.2.840.10008.1.2.1', 6288, 32780)
>>> info.columns["Modality"], rows.tuples()[0][:5]
('CT', ('00020000', '00020000', 0, 'FileMetaInformationGroupLength', 'UL'))
"""

from __future__ import annotations

import struct
import zlib
from contextlib import nullcontext
from functools import cache
from typing import Any, BinaryIO, Final, NamedTuple

from pydicom.datadict import (
    dictionary_has_tag,
    dictionary_keyword,
    dictionary_VR,
    private_dictionary_VR,
)
from pydicom.uid import PrivateTransferSyntaxes
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, STANDARD_VR

from gantry.ingest._limits import OVER_LIMIT, IngestLimits
from gantry.ingest._values import (
    BULK_VRS,
    DECODERS,
    DICOMDIR_UID,
    IMPLICIT_VR_LE,
    PIXEL_DATA,
    PIXEL_TAGS,
    NeedsPydicom,
    SkipFile,
    column_keyword,
    value_hash,
)

__all__ = ["HeaderInfo", "Rows", "inflate_bounded", "read_fast", "sniff", "tag_keyword"]


class Rows:
    """The ``elements`` rows of a batch, one list per stored column.

    Readers append ``path``, ``vr``, ``private_creator``, ``value``,
    ``length`` and ``value_hash``; the other columns are functions of these
    (``tag`` is the path's last 8 characters, ``depth`` its count of ``[``,
    ``keyword`` the tag's dictionary keyword, ``file_id`` the file's) and are
    computed per column when the table is built.  :meth:`truncate` drops the
    rows of a file that was not indexed after all.
    """

    __slots__ = ("path", "vr", "private_creator", "value", "length", "value_hash")

    def __init__(self) -> None:
        self.path: list[str] = []
        self.vr: list[str] = []
        self.private_creator: list[str | None] = []
        self.value: list[str | None] = []
        self.length: list[int] = []
        self.value_hash: list[str | None] = []

    def __len__(self) -> int:
        return len(self.path)

    def add(
        self,
        path: str,
        vr: str,
        private_creator: str | None,
        value: str | None,
        length: int,
        value_hash: str | None,
    ) -> None:
        """Append one row."""
        self.path.append(path)
        self.vr.append(vr)
        self.private_creator.append(private_creator)
        self.value.append(value)
        self.length.append(length)
        self.value_hash.append(value_hash)

    def columns(self) -> list[list[Any]]:
        """The stored column lists."""
        return [getattr(self, name) for name in self.__slots__]

    def truncate(self, count: int) -> None:
        """Keep only the first `count` rows."""
        for column in self.columns():
            del column[count:]

    def tuples(self) -> list[tuple[Any, ...]]:
        """The rows as ``(path, tag, depth, keyword, vr, private_creator, value, length,
        value_hash)`` tuples (for tests and debugging)."""
        return [
            (path, path[-8:], path.count("["), tag_keyword(path[-8:]), *rest)
            for path, *rest in zip(*self.columns(), strict=True)
        ]


@cache
def tag_keyword(taghex: str) -> str | None:
    """The ``elements.keyword`` of a tag: its dictionary keyword, ``None`` if it has none.

    Examples
    --------
    >>> tag_keyword("00100010"), tag_keyword("00091010"), tag_keyword("60023000")
    ('PatientName', None, None)
    """
    tag = int(taghex, 16)
    # dictionary_has_tag is False for repeating groups, as in DataElement.keyword
    return (dictionary_keyword(tag) or None) if dictionary_has_tag(tag) else None


class HeaderInfo(NamedTuple):
    """What a reader learned about one indexed file, besides its element rows."""

    transfer_syntax: str
    pixel_offset: int | None
    pixel_length: int | None
    #: keyword -> text of each top-level element that is an ``instances`` column
    columns: dict[str, str]


_CHUNK: Final = 8192
_UNDEFINED: Final = 0xFFFFFFFF
_ITEM: Final = 0xFFFEE000
_SEQUENCE_END: Final = 0xFFFEE0DD
_CHARSET: Final = 0x00080005
_PIXEL_REPRESENTATION: Final = 0x00280103

_VRS: Final[dict[bytes, str]] = {vr.value.encode(): vr.value for vr in STANDARD_VR}
_LONG_VRS: Final = frozenset(vr.value for vr in EXPLICIT_VR_LENGTH_32)

# character sets decoded here -> Python codec; anything else goes to pydicom
_CODECS: Final = {
    "": "latin_1",
    "ISO_IR 6": "latin_1",
    "ISO_IR 100": "latin_1",
    "ISO_IR 192": "utf_8",
}

# transfer syntax -> (implicit VR, endian, deflated); others are explicit VR LE
_SYNTAXES: Final = {
    IMPLICIT_VR_LE: (True, "<", False),
    "1.2.840.10008.1.2.1": (False, "<", False),
    "1.2.840.10008.1.2.2": (False, ">", False),
    "1.2.840.10008.1.2.1.99": (False, "<", True),
}

# pydicom's ambiguous-VR rules (pydicom.filewriter._correct_ambiguous_vr_element)
_US_SS_TAGS: Final = frozenset(
    {
        0x00189810, 0x00221452, 0x00280104, 0x00280105, 0x00280106, 0x00280107,
        0x00280108, 0x00280109, 0x00280110, 0x00280111, 0x00280120, 0x00280121,
        0x00281101, 0x00281102, 0x00281103, 0x00283002, 0x00409211, 0x00409216,
        0x00603004, 0x00603006,
    }
)  # fmt: skip
_OW_WHEN_IMPLICIT: Final = frozenset(
    {0x54000110, 0x54000112, 0x5400100A, 0x54001010}
    | {g << 16 | 0x3000 for g in range(0x6000, 0x601F, 2)}
)
# pydicom adds 65536 to a negative first LUT Descriptor value read as SS
_LUT_DESCRIPTORS: Final = frozenset({0x00281101, 0x00281102, 0x00281103, 0x00283002})
_AMBIGUOUS_VRS: Final = frozenset({"US or SS", "OB or OW", "US or OW", "US or SS or OW"})
# VRs whose text is the latin-1 value with trailing spaces / NULs stripped
_PLAIN_VRS: Final = frozenset({"AS", "CS", "DA", "DT", "TM"})
# tags that change how later elements of their dataset are read
_SPECIAL_TAGS: Final = frozenset({_CHARSET, _PIXEL_REPRESENTATION})

# tag -> (tag text, dictionary VR or None, instances column keyword)
_PUBLIC: dict[int, tuple[str, str | None, str | None]] = {}
_HEX: dict[int, str] = {}
_PRIVATE_VR: dict[tuple[str, int], str] = {}


def _public(tag: int) -> tuple[str, str | None, str | None]:
    try:
        vr: str | None = str(dictionary_VR(tag))
    except KeyError:
        vr = None
    info = (f"{tag:08X}", vr, column_keyword(tag))
    _PUBLIC[tag] = info
    return info


def _hex(tag: int) -> str:
    text = _HEX[tag] = f"{tag:08X}"
    return text


def _resolve(vr: str, tag: int, implicit: bool, length: int, pixel_rep: int | None) -> str:
    """Resolve an ambiguous dictionary VR the way pydicom does, or decline."""
    if vr == "US or SS" and tag in _US_SS_TAGS and pixel_rep is not None:
        return "US" if pixel_rep == 0 else "SS"
    if vr == "OB or OW" and implicit:
        if tag == PIXEL_DATA:
            return "OB" if length == _UNDEFINED else "OW"
        if tag in _OW_WHEN_IMPLICIT and length != _UNDEFINED:
            return "OW"
    raise NeedsPydicom("ambiguous VR")


def _private_vr(creator: str, tag: int) -> str:
    key = (creator, tag)
    vr = _PRIVATE_VR.get(key)
    if vr is None:
        try:
            vr = str(private_dictionary_VR(tag, creator))
        except KeyError:
            vr = "UN"
        _PRIVATE_VR[key] = vr
    return vr


def sniff(head: bytes | bytearray) -> int | None:
    """Return where the File Meta / dataset starts in a file beginning with `head`.

    132 after a preamble and ``DICM`` prefix; 0 for a raw dataset (no
    preamble) whose first tag is in group 0002 or 0008, little or big
    endian, which pydicom reads with ``force=True``; ``None`` if the bytes do
    not look like DICOM.

    Examples
    --------
    >>> sniff(bytes(128) + b"DICM" + bytes(8)), sniff(b"\\x08\\x00\\x05\\x00CS\\x0a\\x00"), sniff(b"hello world")
    (132, 0, None)
    """
    if len(head) >= 132 and head[128:132] == b"DICM":
        return 132
    if len(head) >= 8 and (head[1] == 0 and head[0] in (2, 8) or head[0] == 0 and head[1] == 8):
        return 0
    return None


def inflate_bounded(stream: BinaryIO, limits: IngestLimits) -> bytearray:
    """Inflate the raw deflate stream from the position of `stream` to its end.

    Reads 1 MiB at a time and stops as soon as the output would pass
    ``limits.max_inflated_bytes``, so a decompression bomb costs at most that
    much memory.

    Raises
    ------
    SkipFile
        ``over_limit`` when the dataset inflates past the limit.
    zlib.error
        The stream is not valid deflate data.
    """
    cap = limits.max_inflated_bytes
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            break
        pending = chunk
        while pending:
            out += inflater.decompress(pending, cap + 1 - len(out))
            if len(out) > cap:
                raise SkipFile(OVER_LIMIT, limits.detail("max_inflated_bytes"))
            pending = inflater.unconsumed_tail
        if inflater.eof:
            break
    if not inflater.eof:
        raise zlib.error("incomplete or truncated deflate stream")
    out += inflater.flush()
    if len(out) > cap:
        raise SkipFile(OVER_LIMIT, limits.detail("max_inflated_bytes"))
    return out


def read_fast(
    path: str,
    size: int,
    rows: Rows,
    limits: IngestLimits | None = None,
    *,
    stream: BinaryIO | None = None,
    first_block: int = 8192,
) -> HeaderInfo:
    """Walk the header of one file, appending its ``elements`` rows to `rows`.

    Parameters
    ----------
    path : str
        The file.
    size : int
        Its size in bytes (from ``stat``).
    rows : Rows
        Receives the rows; on an exception it may hold a partial file's rows,
        which the caller removes (:meth:`Rows.truncate`).
    limits : IngestLimits, optional
        Nesting depth, element length and inflated size (defaults when omitted).
    stream : binary file, optional
        Read from this seekable stream instead of opening `path` (an object in
        object storage, read by ranged requests: :mod:`gantry.storage`).
    first_block : int, default 8192
        Bytes read first; each further read at least doubles what was read.

    Returns
    -------
    HeaderInfo

    Raises
    ------
    SkipFile
        ``not_dicom``, ``dicomdir`` or ``over_limit``.
    NeedsPydicom
        The file needs the reference reader.
    OSError
        Reading failed.
    """
    with open(path, "rb", buffering=0) if stream is None else nullcontext(stream) as f:
        try:
            return _Walk(f, size, rows, limits or IngestLimits(), first_block).run()
        except (SkipFile, NeedsPydicom, OSError):
            raise
        except Exception as exc:  # a malformed file the checks above missed
            raise NeedsPydicom(f"{type(exc).__name__} in the fast path") from exc


class _Walk:
    """One file's walk; datasets are parsed by :meth:`dataset` recursively."""

    def __init__(
        self, f: BinaryIO, size: int, rows: Rows, limits: IngestLimits, chunk: int = _CHUNK
    ) -> None:
        self.f = f
        self.chunk = chunk
        self.limits = limits
        self.size = size
        self.rows = rows
        self.buf = bytearray()
        self.base = 0  # file offset of buf[0]
        self.deflated = False
        self.implicit = False
        self.endian = "<"
        self.columns: dict[str, str] = {}
        self.pixel: tuple[int | None, int] | None = None

    # -- buffer ------------------------------------------------------------

    def more(self, needed: int) -> int:
        """Extend the buffer to hold `needed` bytes if the file has them; return its length."""
        buf = self.buf
        have = len(buf)
        if needed <= have or self.deflated:
            return have
        f = self.f
        f.seek(self.base + have)
        buf += f.read(max(needed - have, have, self.chunk))
        return len(buf)

    # -- file level --------------------------------------------------------

    def run(self) -> HeaderInfo:
        buf = self.buf
        self.more(self.chunk)
        start = sniff(buf)
        if start is None:
            raise SkipFile("not_dicom", "no DICM prefix and no group 0002/0008 tag at the start")
        pos, syntax, sop_class = self.meta(start)
        if sop_class == DICOMDIR_UID:
            raise SkipFile("dicomdir", "a DICOMDIR (media storage directory), not an instance")

        blen = self.more(pos + 6)
        if syntax is None:
            transfer_syntax = IMPLICIT_VR_LE
            implicit, endian, deflated = True, "<", False
            if pos + 6 <= blen:
                # pydicom guesses from the first tag: a valid VR means explicit,
                # a group >= 0x0400 read little endian means big endian
                if bytes(buf[pos + 4 : pos + 6]) in _VRS:
                    implicit = False
                    if buf[pos] | buf[pos + 1] << 8 >= 1024:
                        endian = ">"
        else:
            transfer_syntax = syntax
            if syntax in PrivateTransferSyntaxes:
                raise NeedsPydicom("registered private transfer syntax")
            implicit, endian, deflated = _SYNTAXES.get(syntax, (False, "<", False))
        self.implicit = implicit
        self.endian = endian

        end = self.size
        if deflated:
            self.f.seek(pos)
            try:
                inflated = inflate_bounded(self.f, self.limits)
            except zlib.error:
                raise NeedsPydicom("deflate stream") from None
            self.buf = buf = inflated
            self.deflated = True
            self.base = pos = 0
            end = blen = len(buf)

        if pos + 8 <= blen and buf[pos + 1] == 0 and buf[pos] == 0:
            raise NeedsPydicom("command set elements")
        if pos + 6 <= blen:
            # pydicom switches encoding (with a warning) when the first element
            # contradicts the transfer syntax
            looks_implicit = not (0x40 < buf[pos + 4] < 0x5B and 0x40 < buf[pos + 5] < 0x5B)
            if looks_implicit != implicit:
                raise NeedsPydicom("VR encoding contradicts the transfer syntax")

        self.dataset(pos, end - self.base, 0, "", "latin_1", False)
        offset, length = self.pixel or (None, None)
        return HeaderInfo(transfer_syntax, offset, length, self.columns)

    def meta(self, pos: int) -> tuple[int, str | None, str | None]:
        """Parse the group 0002 elements (explicit VR little endian)."""
        buf = self.buf
        rows = self.rows
        columns = self.columns
        header = _EXPLICIT_LE
        syntax = sop_class = None
        prev = -1
        while True:
            blen = self.more(pos + 12)
            if pos + 8 > blen:
                if pos != blen:
                    raise NeedsPydicom("truncated file meta")
                break
            group, elem, vr_bytes, length = header(buf, pos)
            if group != 2:
                break
            tag = 0x00020000 | elem
            vr = _VRS.get(vr_bytes)
            if vr is None or tag <= prev:
                raise NeedsPydicom("unusual file meta")
            prev = tag
            if vr in _LONG_VRS:
                length = _UL_LE(buf, pos + 8)[0]
                start = pos + 12
            else:
                start = pos + 8
            end = start + length
            if length == _UNDEFINED or vr == "SQ" or end > self.size or end > self.more(end):
                raise NeedsPydicom("unusual file meta")
            taghex, dict_vr, column = _PUBLIC.get(tag) or _public(tag)
            if vr == "UN" or " or " in vr:
                raise NeedsPydicom("UN in file meta")
            text: str | None = None
            digest = None
            if vr in BULK_VRS:
                digest = value_hash(buf[start:end])
            elif length:
                text = DECODERS[vr](buf[start:end], "latin_1", "<")
            else:
                text = ""
            rows.add(taghex, vr, None, text, length, digest)
            if column is not None and text is not None:
                columns[column] = text
            if tag == 0x00020010:
                syntax = text
            elif tag == 0x00020002:
                sop_class = text
            pos = end
        return pos, syntax, sop_class

    # -- datasets ----------------------------------------------------------

    def dataset(
        self, pos: int, end: int, depth: int, prefix: str, codec: str, undefined: bool
    ) -> int:
        """Parse elements from `pos` to `end`; return the position after the dataset.

        `undefined` marks an item of undefined length, which must end with an
        item delimiter before `end`.  This is the hot loop of ingest: constants
        are literals, lookups are local, rows go straight into column lists.
        """
        buf = self.buf
        blen = len(buf)
        rows = self.rows
        add_path = rows.path.append
        add_vr = rows.vr.append
        add_creator = rows.private_creator.append
        add_value = rows.value.append
        add_length = rows.length.append
        add_hash = rows.value_hash.append
        implicit = self.implicit
        endian = self.endian
        if implicit:
            header = _IMPLICIT_LE if endian == "<" else _IMPLICIT_BE
        else:
            header = _EXPLICIT_LE if endian == "<" else _EXPLICIT_BE
        ulong = _UL_LE if endian == "<" else _UL_BE
        top = depth == 0
        columns = self.columns if top else None
        public = _PUBLIC
        hexes = _HEX
        vrs = _VRS
        long_vrs = _LONG_VRS
        bulk_vrs = BULK_VRS
        plain_vrs = _PLAIN_VRS
        ambiguous_vrs = _AMBIGUOUS_VRS
        decoders = DECODERS
        pixel_tags = PIXEL_TAGS
        special_tags = _SPECIAL_TAGS
        creators: dict[int, str] = {}  # creator tag (gggg,00xx) -> its value
        pixel_rep: int | None = None
        prev = -1
        while pos < end:
            if pos + 12 > blen:
                blen = self.more(pos + 12)
                if pos + 8 > blen or pos + 8 > end:
                    raise NeedsPydicom("truncated element header")
            if implicit:
                group, elem, length = header(buf, pos)
                vstart = pos + 8
                vr = ""
            else:
                group, elem, vr_bytes, length = header(buf, pos)
            tag = group << 16 | elem
            if tag <= prev or group == 0xFFFE:
                if undefined and tag == 0xFFFEE00D:
                    return pos + 8
                raise NeedsPydicom("element out of order, repeated, or an unexpected delimiter")
            prev = tag
            if not implicit:
                vr = vrs.get(vr_bytes, "")
                if not vr:
                    raise NeedsPydicom("unknown VR")
                if vr in long_vrs:
                    vstart = pos + 12
                    if vstart > end or vstart > blen:
                        raise NeedsPydicom("truncated element header")
                    length = ulong(buf, pos + 8)[0]
                    if length == 0xFFFFFFFF and vr == "UN":
                        raise NeedsPydicom("UN of undefined length")
                else:
                    vstart = pos + 8

            # -- tag information and the VR pydicom would report
            creator = None
            column = None
            if group & 1:
                taghex = hexes.get(tag) or _hex(tag)
                dict_vr = None
                if elem < 0x100:
                    if implicit or vr == "UN":
                        vr = "LO" if elem >= 0x10 else "UN"
                elif elem < 0x1000:
                    raise NeedsPydicom("private element outside a creator block")
                else:
                    creator = creators.get(group << 16 | elem >> 8)
                    if implicit or vr == "UN":
                        vr = "UN" if creator is None else _private_vr(creator, tag)
                        if vr == "SQ" and not implicit:
                            raise NeedsPydicom("UN re-typed as a sequence")
            else:
                taghex, dict_vr, column = public.get(tag) or _public(tag)
                if implicit:
                    vr = dict_vr or ("UL" if elem == 0 else "UN")
                elif vr == "UN" and dict_vr is not None and length < 0xFFFF:
                    vr = dict_vr
                    if vr == "SQ":
                        raise NeedsPydicom("UN re-typed as a sequence")
            ambiguous = vr in ambiguous_vrs
            if ambiguous:
                vr = _resolve(vr, tag, implicit, length, pixel_rep)
            path = prefix + taghex

            # -- undefined length: sequences and encapsulated pixel data
            if length == 0xFFFFFFFF:
                if implicit and (group & 1 or dict_vr is None):
                    # pydicom looks ahead: an item tag means a sequence
                    blen = self.more(vstart + 4)
                    if vstart + 4 > blen or self.item_tag(vstart) != 0xFFFEE000:
                        raise NeedsPydicom("undefined length value")
                    vr = "SQ"
                if vr == "SQ":
                    index = len(rows.path)
                    rows.add(path, vr, creator, None, 0, None)
                    pos, count = self.sequence(vstart, 0xFFFFFFFF, depth, path, codec, end)
                    rows.length[index] = count
                    blen = len(buf)
                    continue
                if tag not in pixel_tags:
                    raise NeedsPydicom("undefined length value")
                delimiter = self.fragments(vstart, not top)
                rows.add(path, vr, creator, None, delimiter - vstart, None)
                if top:
                    pos, end = self.skip_pixels(tag, pos, delimiter + 8, end)
                else:
                    pos = delimiter + 8
                blen = len(buf)
                continue

            vend = vstart + length
            if vend > end:
                raise NeedsPydicom("value runs past its dataset or the file")
            if length > self.limits.max_element_bytes and tag not in pixel_tags and vr != "SQ":
                raise SkipFile(OVER_LIMIT, self.limits.detail("max_element_bytes", length))
            if tag in pixel_tags:
                rows.add(path, vr, creator, None, length, None)
                if top:
                    pos, end = self.skip_pixels(tag, pos, vend, end)
                    blen = len(buf)
                else:
                    blen = self.more(vend)
                    pos = vend
                continue
            if vend > blen:
                blen = self.more(vend)

            text: str | None
            digest = None
            if vr == "SQ":
                index = len(rows.path)
                rows.add(path, vr, creator, None, 0, None)
                after, count = self.sequence(vstart, length, depth, path, codec, vend)
                if after != vend:
                    raise NeedsPydicom("sequence length mismatch")
                rows.length[index] = count
                blen = len(buf)
                pos = vend
                continue
            elif vr in bulk_vrs:
                text = None
                digest = value_hash(buf[vstart:vend])
            elif not length:
                text = ""
            elif vr in plain_vrs:
                text = buf[vstart:vend].decode("latin_1").rstrip(" \x00")
            else:
                text = decoders[vr](buf[vstart:vend], codec, endian)
                # pydicom's fix of a negative first LUT Descriptor value applies to
                # values read as SS, not to those it re-reads as SS after the fact
                lut = vr == "SS" and tag in _LUT_DESCRIPTORS and not ambiguous
                if lut and text[0] == "-" and "\\" in text:
                    first, rest = text.split("\\", 1)
                    text = f"{int(first) + 65536}\\{rest}"
            add_path(path)
            add_vr(vr)
            add_creator(creator)
            add_value(text)
            add_length(length)
            add_hash(digest)
            pos = vend
            if text is None:
                continue
            if column is not None and columns is not None:
                columns[column] = text
            if group & 1:
                if 0x10 <= elem < 0x100:
                    creators[tag] = text
            elif tag in special_tags:
                if tag == 0x00080005:
                    codec = _CODECS.get(text, "")
                    if not codec:
                        raise NeedsPydicom("character set")
                elif vr == "US" and length == 2:  # (0028,0103) Pixel Representation
                    pixel_rep = int(text)
        if undefined or pos != end:
            raise NeedsPydicom("dataset does not end where it should")
        return pos

    def item_tag(self, pos: int) -> int:
        group, elem = (_TAG_LE if self.endian == "<" else _TAG_BE)(self.buf, pos)
        return int(group << 16 | elem)

    def sequence(
        self, pos: int, length: int, depth: int, path: str, codec: str, limit: int
    ) -> tuple[int, int]:
        """Parse the items of a sequence value starting at `pos`; return (end, item count)."""
        if depth >= self.limits.max_depth:
            raise SkipFile(OVER_LIMIT, self.limits.detail("max_depth"))
        undefined = length == _UNDEFINED
        end = limit if undefined else pos + length
        item_header = _ITEM_LE if self.endian == "<" else _ITEM_BE
        buf = self.buf
        count = 0
        while undefined or pos < end:
            if pos + 8 > end or pos + 8 > self.more(pos + 8):
                raise NeedsPydicom("truncated sequence")
            group, elem, item_length = item_header(buf, pos)
            tag = group << 16 | elem
            if tag == _SEQUENCE_END and undefined:
                return pos + 8, count
            if tag != _ITEM:
                raise NeedsPydicom("not an item")
            pos += 8
            prefix = f"{path}[{count}]."
            if item_length == _UNDEFINED:
                pos = self.dataset(pos, end, depth + 1, prefix, codec, True)
            else:
                item_end = pos + item_length
                if item_end > end:
                    raise NeedsPydicom("item runs past its sequence")
                pos = self.dataset(pos, item_end, depth + 1, prefix, codec, False)
            count += 1
        return pos, count

    def fragments(self, pos: int, contiguous: bool) -> int:
        """Walk encapsulated pixel data item headers; return the sequence delimiter's position.

        Fragment bytes are sought over, never read, unless `contiguous` (a
        nested pixel element the buffer must cover anyway).
        """
        item_header = _ITEM_LE if self.endian == "<" else _ITEM_BE
        buf = self.buf
        limit = len(buf) if self.deflated else self.size - self.base
        while True:
            if pos + 8 > limit:
                raise NeedsPydicom("truncated encapsulated pixel data")
            if pos + 8 <= len(buf) or contiguous:
                if pos + 8 > self.more(pos + 8):
                    raise NeedsPydicom("truncated encapsulated pixel data")
                group, elem, item_length = item_header(buf, pos)
            else:
                f = self.f
                f.seek(self.base + pos)
                group, elem, item_length = item_header(f.read(8), 0)
            tag = group << 16 | elem
            if tag == _SEQUENCE_END:
                return pos
            if tag != _ITEM or item_length == _UNDEFINED:
                raise NeedsPydicom("malformed encapsulated pixel data")
            pos += 8 + item_length

    def skip_pixels(self, tag: int, pos: int, element_end: int, end: int) -> tuple[int, int]:
        """Record a top-level pixel element and move past it without reading it."""
        if element_end > end:
            raise NeedsPydicom("pixel data runs past the end of the file")
        if tag == PIXEL_DATA:
            self.pixel = (None if self.deflated else self.base + pos, element_end - pos)
        if element_end <= len(self.buf) or self.deflated:
            return element_end, end
        # drop the buffer: what follows is read from the file after the pixels
        self.base += element_end
        del self.buf[:]
        return 0, end - element_end


_EXPLICIT_LE: Final = struct.Struct("<HH2sH").unpack_from
_EXPLICIT_BE: Final = struct.Struct(">HH2sH").unpack_from
_IMPLICIT_LE: Final = struct.Struct("<HHL").unpack_from
_IMPLICIT_BE: Final = struct.Struct(">HHL").unpack_from
_ITEM_LE: Final = _IMPLICIT_LE
_ITEM_BE: Final = _IMPLICIT_BE
_UL_LE: Final = struct.Struct("<L").unpack_from
_UL_BE: Final = struct.Struct(">L").unpack_from
_TAG_LE: Final = struct.Struct("<HH").unpack_from
_TAG_BE: Final = struct.Struct(">HH").unpack_from
