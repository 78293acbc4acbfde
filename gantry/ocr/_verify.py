"""The export's second OCR pass: identifying text must be gone from the written pixels."""

from __future__ import annotations

import io
from typing import Any

__all__ = ["remaining_phi"]


def remaining_phi(data: bytes, check: dict[str, Any]) -> str | None:
    """Why the written file ``data`` still shows identifying text, or None when it does not.

    ``check`` holds ``engine``, ``min_confidence`` and ``identity`` (``(keyword,
    value)`` pairs of the original instance).  Every frame is rendered as a
    viewer shows it and read again; the reason names the frame and the kinds of
    match, never the text.
    """
    import pydicom

    from gantry.ocr._display import display_frame, frame_count
    from gantry.ocr._engine import get_engine
    from gantry.ocr._match import IdentityTokens, phi_kinds

    ds = pydicom.dcmread(io.BytesIO(data))
    engine = get_engine(check.get("engine", "rapidocr"), min_confidence=check.get("min_confidence", 0.5))
    identity = IdentityTokens.from_values(check.get("identity", []))
    for index in range(frame_count(ds)):
        for box in engine.read(display_frame(ds, index)):
            kinds = phi_kinds(box.text, identity)
            if kinds:
                return (
                    f"identifying text is still burned into frame {index} after redaction "
                    f"(second OCR pass: {', '.join(sorted(set(kinds)))})"
                )
    return None
