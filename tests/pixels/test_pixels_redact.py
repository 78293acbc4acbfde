"""gantry.pixels.redact / verify_redaction: layouts, clipping, fills, and properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gantry.errors import ConfigError, RedactionError
from gantry.pixels import RedactionResult, Zone, redact, verify_redaction


# ----------------------------------------------------------------------- Zone
def test_zone_validation_and_clipping() -> None:
    assert Zone(np.int64(1), 2, 3, 4).row_start == 1
    with pytest.raises(ConfigError, match="row_start < row_end"):
        Zone(5, 5, 0, 1)
    with pytest.raises(ConfigError, match="`zone.col_end` must be an integer"):
        Zone(0, 1, 0, 1.5)  # type: ignore[arg-type]
    assert Zone(-5, 3, 8, 20).clip(10, 10) == Zone(0, 3, 8, 10)
    assert Zone(-5, 0, 0, 3).clip(10, 10) is None


@pytest.mark.parametrize(
    ("shape", "opts"),
    [
        ((6, 8), {}),
        ((3, 6, 8), {"frame_axis": True}),
        ((3, 6, 8), {"frames": 3}),
        ((6, 8, 3), {}),
        ((6, 8, 3), {"samples_per_pixel": 3}),
        ((2, 6, 8, 3), {}),
        ((1, 6, 8), {"frame_axis": True}),
    ],
)
def test_every_layout(shape: tuple[int, ...], opts: dict[str, object]) -> None:
    arr = np.arange(np.prod(shape), dtype=np.int32).reshape(shape) + 1
    res = redact(arr, [Zone(1, 3, 2, 5)], fill=0, **opts)  # type: ignore[arg-type]
    assert isinstance(res, RedactionResult) and res.changed and res.pixels == 6
    assert res.array is not arr and np.count_nonzero(arr == 0) == 0  # input untouched
    four = res.array.reshape((-1, 6, 8, shape[-1] if shape[-1] == 3 else 1))
    assert (four[:, 1:3, 2:5, :] == 0).all()
    assert np.count_nonzero(res.array == 0) == res.array.size // 48 * 6
    verify_redaction(arr, res.array, [Zone(1, 3, 2, 5)], 0, **opts)  # type: ignore[arg-type]


def test_clipped_and_outside_zones_are_reported() -> None:
    arr = np.ones((4, 5), np.uint16)
    res = redact(arr, [(2, 10, 3, 10), (50, 60, 0, 2), Zone(0, 1, 0, 1)], fill=9)
    assert res.zones == (Zone(2, 4, 3, 5), Zone(0, 1, 0, 1))
    assert res.warnings == (
        "zone (2, 10, 3, 10) extends outside the 4x5 image; clipped to (2, 4, 3, 5)",
        "zone (50, 60, 0, 2) lies entirely outside the 4x5 image; nothing redacted",
    )
    assert res.pixels == 5
    nothing = redact(arr, [Zone(9, 10, 9, 10)])
    assert not nothing.changed and np.array_equal(nothing.array, arr)


def test_in_place_and_fill_checks() -> None:
    arr = np.zeros((3, 3), np.int16)
    res = redact(arr, [Zone(0, 1, 0, 1)], fill=-7, copy=False)
    assert res.array is arr and arr[0, 0] == -7
    with pytest.raises(RedactionError, match="`fill` must be within 0..255"):
        redact(np.zeros((2, 2), np.uint8), [Zone(0, 1, 0, 1)], fill=256)
    with pytest.raises(RedactionError, match="must be an integer"):
        redact(np.zeros((2, 2), np.uint8), [Zone(0, 1, 0, 1)], fill=1.5)
    with pytest.raises(RedactionError, match="finite"):
        redact(np.zeros((2, 2), np.float32), [Zone(0, 1, 0, 1)], fill=float("nan"))
    with pytest.raises(RedactionError, match="integers or floats"):
        redact(np.zeros((2, 2), bool), [Zone(0, 1, 0, 1)])
    frozen = np.zeros((2, 2), np.uint8)
    frozen.flags.writeable = False
    with pytest.raises(RedactionError, match="read-only"):
        redact(frozen, [Zone(0, 1, 0, 1)], copy=False)


def test_layout_mismatches() -> None:
    with pytest.raises(RedactionError, match="`samples_per_pixel` does not match"):
        redact(np.zeros((4, 4, 3), np.uint8), [Zone(0, 1, 0, 1)], samples_per_pixel=1, frames=1)
    with pytest.raises(RedactionError, match="`frames` does not match"):
        redact(np.zeros((2, 4, 4), np.uint8), [Zone(0, 1, 0, 1)], frames=3)
    with pytest.raises(RedactionError, match="2 to 4 axes"):
        redact(np.zeros(4, np.uint8), [Zone(0, 1, 0, 1)])


def test_verify_catches_every_kind_of_mistake() -> None:
    before = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6)
    zones = [Zone(1, 3, 1, 3), Zone(2, 4, 2, 5)]
    after = redact(before, zones, fill=-1.0).array
    verify_redaction(before, after, zones, -1.0)
    leak = after.copy()
    leak[1, 2, 2] = 5  # a zone pixel left unblanked
    with pytest.raises(RedactionError, match="not the fill value"):
        verify_redaction(before, leak, zones, -1.0)
    spill = after.copy()
    spill[0, 4, 0] = 0  # a pixel outside every zone changed
    with pytest.raises(RedactionError, match="1 pixel value"):
        verify_redaction(before, spill, zones, -1.0)
    neg_zero = after.copy()
    neg_zero[0, 0, 0] = -0.0 if before[0, 0, 0] == 0 else before[0, 0, 0]
    with pytest.raises(RedactionError, match="changed"):  # bit-for-bit, not ==
        verify_redaction(before, neg_zero, zones, -1.0)
    with pytest.raises(RedactionError, match="the original is"):
        verify_redaction(before, after.astype(np.float64), zones, -1.0)


# -------------------------------------------------------------- properties
DTYPES = [np.uint8, np.uint16, np.int16, np.float32]


@st.composite
def _case(draw: st.DrawFn) -> tuple[np.ndarray, list[Zone], float, dict[str, object]]:
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    frames = draw(st.integers(1, 3))
    samples = draw(st.sampled_from([1, 3]))
    rows, cols = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    shape = (rows, cols) + ((samples,) if samples == 3 else ())
    if frames > 1:
        shape = (frames, *shape)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if dtype.kind == "f":
        arr = rng.normal(0, 1000, size=shape).astype(dtype)
        fill: float = draw(st.floats(-1e6, 1e6, allow_nan=False, width=32))
    else:
        info = np.iinfo(dtype)
        arr = rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
        fill = draw(st.integers(int(info.min), int(info.max)))
    coord = st.integers(-15, 30)
    zones = []
    for _ in range(draw(st.integers(0, 4))):
        r0, c0 = draw(coord), draw(coord)
        zones.append(Zone(r0, r0 + draw(st.integers(1, 20)), c0, c0 + draw(st.integers(1, 20))))
    return arr, zones, fill, {"frames": frames, "samples_per_pixel": samples}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_case())
def test_redaction_blanks_zones_and_nothing_else(
    case: tuple[np.ndarray, list[Zone], float, dict[str, object]],
) -> None:
    arr, zones, fill, layout = case
    original = arr.copy()
    res = redact(arr, zones, fill=fill, **layout)  # type: ignore[arg-type]
    np.testing.assert_array_equal(arr, original)  # the input is left alone
    out = res.array
    rows, cols = arr.shape[-3:-1] if layout["samples_per_pixel"] == 3 else arr.shape[-2:]
    mask = np.zeros((rows, cols), bool)  # an independent, naive mask
    for z in zones:
        mask[max(z.row_start, 0) : max(z.row_end, 0), max(z.col_start, 0) : max(z.col_end, 0)] = (
            True
        )
    if layout["samples_per_pixel"] == 3:
        mask = mask[..., np.newaxis]
    mask = np.broadcast_to(mask, out.shape)
    value = out.dtype.type(fill)
    assert (out[mask] == value).all()
    assert (out[~mask].view(f"u{out.dtype.itemsize}") == original[~mask].view(
        f"u{out.dtype.itemsize}")).all()  # fmt: skip
    assert res.pixels == int(np.count_nonzero(mask)) // max(1, out.size // (rows * cols))
    assert len(res.warnings) == sum(z.clip(rows, cols) != z for z in zones)
    verify_redaction(original, out, zones, fill, **layout)  # type: ignore[arg-type]
