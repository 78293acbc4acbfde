"""Pixel data: decode and encode through imagecodecs, redact zones with numpy.

``docs/pixels.md`` has the codec support matrix and the choices made.
"""

from gantry.pixels._codecs import decode, iter_frames
from gantry.pixels._encode import EncodedPixels, apply_encoded, encode
from gantry.pixels._transfer_syntax import Compression

__all__ = ["Compression", "EncodedPixels", "apply_encoded", "decode", "encode", "iter_frames"]
