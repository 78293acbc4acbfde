"""Pixel data: decode and encode through imagecodecs, redact zones with numpy.

``docs/pixels.md`` has the codec support matrix and the choices made.
"""

from gantry.pixels._codecs import decode, iter_frames
from gantry.pixels._transfer_syntax import Compression

__all__ = ["Compression", "decode", "iter_frames"]
