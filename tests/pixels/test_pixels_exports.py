"""gantry.pixels exports a short, frozen public surface."""

import gantry.pixels


def test_public_names_are_frozen() -> None:
    assert gantry.pixels.__all__ == [
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
    for name in gantry.pixels.__all__:
        assert getattr(gantry.pixels, name).__module__.startswith("gantry.pixels")
