"""Transfer syntaxes Gantry can decode and encode, and the :class:`Compression` choices.

One table (:data:`SYNTAXES`) says, for every transfer syntax Gantry knows, which
codec family reads it, whether it is lossy, and which :class:`Compression`
writes it (if any).  Everything else in :mod:`gantry.pixels` looks syntaxes up
here rather than repeating UID lists.
"""

from __future__ import annotations

import dataclasses
import enum

from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from gantry.errors import ConfigError

__all__ = ["SYNTAXES", "Compression", "SyntaxSpec", "redaction_target", "resolve_target"]


class Compression(enum.StrEnum):
    """How :func:`gantry.pixels.encode` writes pixel data.

    Every member but ``J2K_LOSSY`` and ``JPEGLS_NEAR`` is lossless, and every
    lossless result is decoded again and compared with its input before it is
    returned.  Lossy encoding happens only when one of the two lossy members
    (or its transfer syntax UID) is asked for by name.

    Examples
    --------
    >>> Compression("j2k").transfer_syntax.name
    'JPEG 2000 Image Compression (Lossless Only)'
    >>> [c.value for c in Compression if c.lossy]
    ['j2k-lossy', 'jpegls-near']
    """

    NONE = "none"
    """Native (uncompressed) pixels, Explicit VR Little Endian."""
    RLE = "rle"
    """RLE Lossless (PackBits segments through imagecodecs)."""
    JPEG_LOSSLESS = "jpeg-lossless"
    """JPEG Lossless, first-order prediction (Process 14, SV1) through libjpeg-turbo."""
    JPEGLS = "jpegls"
    """JPEG-LS lossless through CharLS."""
    J2K = "j2k"
    """JPEG 2000 lossless (reversible 5/3 wavelet, RCT on colour) through OpenJPEG."""
    HTJ2K = "htj2k"
    """High-Throughput JPEG 2000 lossless through OpenJPH."""
    HTJ2K_RPCL = "htj2k-rpcl"
    """HTJ2K lossless with RPCL progression, TLM markers and tile-parts by resolution."""
    J2K_LOSSY = "j2k-lossy"
    """JPEG 2000 irreversible (9/7 wavelet, ICT on colour); ``level`` is a target PSNR in dB."""
    JPEGLS_NEAR = "jpegls-near"
    """JPEG-LS near-lossless; ``level`` is the maximum absolute error NEAR."""

    @property
    def transfer_syntax(self) -> UID:
        """The transfer syntax UID this compression writes."""
        return _COMPRESSION_UID[self]

    @property
    def lossy(self) -> bool:
        """Whether decoding the result may differ from the input."""
        return self in (Compression.J2K_LOSSY, Compression.JPEGLS_NEAR)


_COMPRESSION_UID: dict[Compression, UID] = {
    Compression.NONE: ExplicitVRLittleEndian,
    Compression.RLE: RLELossless,
    Compression.JPEG_LOSSLESS: JPEGLosslessSV1,
    Compression.JPEGLS: JPEGLSLossless,
    Compression.J2K: JPEG2000Lossless,
    Compression.HTJ2K: HTJ2KLossless,
    Compression.HTJ2K_RPCL: HTJ2KLosslessRPCL,
    Compression.J2K_LOSSY: JPEG2000,
    Compression.JPEGLS_NEAR: JPEGLSNearLossless,
}


@dataclasses.dataclass(frozen=True)
class SyntaxSpec:
    """What Gantry knows about one transfer syntax.

    ``family`` names the decoder: ``native``, ``rle``, ``jpeg`` (baseline and
    extended), ``jpeg-lossless``, ``jpegls``, ``j2k`` or ``htj2k``.
    ``encoder`` is the :class:`Compression` that writes this syntax, or None.
    """

    uid: UID
    family: str
    lossy: bool
    encoder: Compression | None

    @property
    def encapsulated(self) -> bool:
        return self.family != "native"


def _spec(uid: UID, family: str, lossy: bool, encoder: Compression | None) -> SyntaxSpec:
    return SyntaxSpec(UID(uid), family, lossy, encoder)


#: Every transfer syntax :func:`gantry.pixels.decode` reads, keyed by UID.
SYNTAXES: dict[str, SyntaxSpec] = {
    s.uid: s
    for s in (
        _spec(ImplicitVRLittleEndian, "native", False, Compression.NONE),
        _spec(ExplicitVRLittleEndian, "native", False, Compression.NONE),
        _spec(DeflatedExplicitVRLittleEndian, "native", False, Compression.NONE),
        _spec(ExplicitVRBigEndian, "native", False, None),
        _spec(RLELossless, "rle", False, Compression.RLE),
        _spec(JPEGBaseline8Bit, "jpeg", True, None),
        _spec(JPEGExtended12Bit, "jpeg", True, None),
        _spec(JPEGLossless, "jpeg-lossless", False, Compression.JPEG_LOSSLESS),
        _spec(JPEGLosslessSV1, "jpeg-lossless", False, Compression.JPEG_LOSSLESS),
        _spec(JPEGLSLossless, "jpegls", False, Compression.JPEGLS),
        _spec(JPEGLSNearLossless, "jpegls", True, Compression.JPEGLS_NEAR),
        _spec(JPEG2000Lossless, "j2k", False, Compression.J2K),
        _spec(JPEG2000, "j2k", True, Compression.J2K_LOSSY),
        _spec(HTJ2KLossless, "htj2k", False, Compression.HTJ2K),
        _spec(HTJ2KLosslessRPCL, "htj2k", False, Compression.HTJ2K_RPCL),
        _spec(HTJ2K, "htj2k", True, None),
    )
}

#: Native syntaxes whose pixel bytes are identical (little endian); encoding to
#: any of them writes the same bytes, only the dataset's encoding differs.
LITTLE_ENDIAN_NATIVE = frozenset(
    {ImplicitVRLittleEndian, ExplicitVRLittleEndian, DeflatedExplicitVRLittleEndian}
)


def resolve_target(target: str | Compression) -> tuple[UID, Compression]:
    """Normalise an encoding target to ``(transfer syntax UID, compression)``.

    ``target`` is a :class:`Compression` (or its value, such as ``"j2k"``) or a
    transfer syntax UID that Gantry can write.  A lossy UID counts as asking for
    lossy compression by name.

    Examples
    --------
    >>> resolve_target("rle")
    ('1.2.840.10008.1.2.5', <Compression.RLE: 'rle'>)
    >>> resolve_target("1.2.840.10008.1.2")[1]
    <Compression.NONE: 'none'>
    >>> resolve_target("zip")
    Traceback (most recent call last):
    ...
    gantry.errors.ConfigError: `transfer_syntax` must be ...
    """
    if isinstance(target, Compression):
        return target.transfer_syntax, target
    text = str(target).strip()
    try:
        comp = Compression(text.lower())
    except ValueError:
        spec = SYNTAXES.get(text)
        if spec is None or spec.encoder is None:
            writable = sorted(uid for uid, s in SYNTAXES.items() if s.encoder is not None)
            raise ConfigError(
                "transfer_syntax",
                expected="one of "
                + ", ".join(repr(c.value) for c in Compression)
                + " or a writable transfer syntax UID ("
                + ", ".join(writable)
                + ")",
                got=target,
            ) from None
        return spec.uid, spec.encoder
    return comp.transfer_syntax, comp


def redaction_target(transfer_syntax: str) -> UID:
    """The syntax :func:`gantry.pixels.redact_dataset` writes for an input syntax.

    The same syntax when Gantry has a lossless encoder for it, otherwise
    Explicit VR Little Endian (never a lossy re-encode).

    Examples
    --------
    >>> redaction_target("1.2.840.10008.1.2.4.80").name
    'JPEG-LS Lossless Image Compression'
    >>> redaction_target("1.2.840.10008.1.2.4.50").name
    'Explicit VR Little Endian'
    """
    spec = SYNTAXES.get(str(transfer_syntax))
    if spec is None or spec.encoder is None or spec.lossy:
        return ExplicitVRLittleEndian
    return spec.uid
