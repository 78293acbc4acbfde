"""Pixel data: decode and encode through imagecodecs, redact zones with numpy.

The flow is ``decode`` / ``iter_frames`` → ``redact`` → ``verify_redaction`` →
``encode`` → ``apply_encoded``; ``redact_dataset`` runs it frame by frame on a
dataset.  ``docs/pixels.md`` has the codec support matrix and the choices made.

Examples
--------
>>> import numpy as np
>>> from gantry.pixels import Zone, redact
>>> redact(np.ones((2, 3), np.uint8), [Zone(0, 1, 0, 2)]).array
array([[0, 0, 1],
       [1, 1, 1]], dtype=uint8)
"""

from gantry.pixels._codecs import decode, iter_frames
from gantry.pixels._encode import EncodedPixels, apply_encoded, encode
from gantry.pixels._redact import RedactionResult, Zone, redact, verify_redaction
from gantry.pixels._redact_dataset import RedactionReport, redact_dataset
from gantry.pixels._transfer_syntax import Compression

__all__ = [
    "Compression",
    "EncodedPixels",
    "RedactionReport",
    "RedactionResult",
    "Zone",
    "apply_encoded",
    "decode",
    "encode",
    "iter_frames",
    "redact",
    "redact_dataset",
    "verify_redaction",
]
