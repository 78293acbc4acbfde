"""The face plane on synthetic head phantoms: face removed ≥ 99 %, brain kept ≥ 99.5 %."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gantry.deface import FacePlane, SliceGeometry, fit_face_plane, stack_slices
from gantry.errors import DefaceError
from gantry.testing import make_head_phantom

pytest.importorskip("scipy", reason="pip install 'gantry[deface]'")

CASES = [
    {"modality": "CT"},
    {"modality": "MR"},
    {"modality": "CT", "orientation": "sagittal"},
    {"modality": "MR", "orientation": "sagittal", "reverse": True},
    {"modality": "CT", "orientation": "coronal", "reverse": True},
    {"modality": "MR", "orientation": "coronal"},
    {"modality": "CT", "reverse": True, "pitch": 12.0, "noise": 20.0},
    {"modality": "CT", "pitch": -15.0, "roll": 5.0, "noise": 20.0, "seed": 3},
    {"modality": "MR", "pitch": -10.0, "roll": -6.0, "noise": 40.0, "seed": 1},
    {"modality": "MR", "orientation": "sagittal", "pitch": 15.0, "noise": 30.0, "seed": 2},
]


def _fit(**kwargs: object) -> tuple[object, np.ndarray]:
    ph = make_head_phantom(**kwargs)  # type: ignore[arg-type]
    geometries = ph.geometries()
    order, step = stack_slices(geometries)
    fit = fit_face_plane(
        ph.values()[order], [geometries[i] for i in order], step, modality=ph.modality
    )
    removed = np.stack([fit.plane.slice_mask(g) for g in geometries])
    return ph, removed


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_face_removed_brain_kept(case: dict[str, object]) -> None:
    ph, removed = _fit(**case)
    assert ph.face.sum() > 500 and ph.brain.sum() > 10_000  # type: ignore[attr-defined]
    assert removed[ph.face].mean() >= 0.99  # type: ignore[attr-defined]
    assert 1 - removed[ph.brain].mean() >= 0.995  # type: ignore[attr-defined]


def test_same_head_same_plane_in_every_orientation() -> None:
    planes = []
    for orientation in ("axial", "sagittal", "coronal"):
        ph = make_head_phantom(orientation=orientation)  # type: ignore[arg-type]
        gs = ph.geometries()
        order, step = stack_slices(gs)
        fit = fit_face_plane(ph.values()[order], [gs[i] for i in order], step, modality="CT")
        planes.append((*fit.plane.normal, fit.plane.offset))
    assert np.allclose(planes, planes[0], atol=2.0)


def test_no_head_is_refused() -> None:
    ph = make_head_phantom()
    gs = ph.geometries()
    with pytest.raises(DefaceError, match="no head"):
        fit_face_plane(np.full(ph.volume.shape, -1000.0), gs, 4.0, modality="CT")


@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_soft_tissue_without_a_skull_is_refused(modality: str) -> None:
    ph = make_head_phantom(modality=modality)  # type: ignore[arg-type]
    values = ph.values()
    soft = 40.0 if modality == "CT" else 600.0
    blob = np.where(ph.brain | ph.face, soft, values.min())  # a brain and a face, no skull
    with pytest.raises(DefaceError, match="no skull"):
        fit_face_plane(blob, ph.geometries(), ph.step, modality=modality)


def test_stack_refuses_gaps_and_short_series() -> None:
    gs = [
        SliceGeometry((0.0, 0.0, float(z)), (1, 0, 0, 0, 1, 0), (1.0, 1.0), 4, 4) for z in range(20)
    ]
    assert stack_slices(gs[::-1])[0] == list(range(19, -1, -1))
    with pytest.raises(DefaceError, match="evenly spaced"):
        stack_slices(gs[:10] + gs[11:])
    with pytest.raises(DefaceError, match="at least 16"):
        stack_slices(gs[:3])
    tilted = SliceGeometry((0.0, 0.0, 20.0), (0, 1, 0, 0, 0, -1), (1.0, 1.0), 4, 4)
    with pytest.raises(DefaceError, match="mixes"):
        stack_slices([*gs, tilted])


def test_slice_mask_matches_points() -> None:
    g = SliceGeometry((-3.0, 5.0, 2.0), (0.6, 0.8, 0, 0, 0, -1), (0.7, 1.3), 9, 11)
    plane = FacePlane((0.0, -0.6, -0.8), -4.0)
    expected = g.points() @ np.asarray(plane.normal) > plane.offset
    assert np.array_equal(plane.slice_mask(g), expected)
    assert 0 < expected.sum() < expected.size


def test_bad_geometry_is_refused() -> None:
    with pytest.raises(DefaceError, match="not valid"):
        SliceGeometry.checked((0, 0, 0), (1, 0, 0, 1, 0, 0), (1, 1), 4, 4)


@settings(max_examples=60, deadline=None)
@given(
    angles=st.tuples(*[st.floats(-3.1, 3.1)] * 3),
    position=st.tuples(*[st.floats(-200, 200)] * 3),
    spacing=st.tuples(st.floats(0.3, 5), st.floats(0.3, 5)),
    normal=st.tuples(*[st.floats(-1, 1)] * 3).filter(lambda n: sum(v * v for v in n) > 0.01),
    offset=st.floats(-150, 150),
)
def test_slice_mask_is_the_plane_side_of_every_pixel_centre(
    angles: tuple[float, float, float],
    position: tuple[float, float, float],
    spacing: tuple[float, float],
    normal: tuple[float, float, float],
    offset: float,
) -> None:
    a, b, c = angles
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rx = np.array([[1, 0, 0], [0, np.cos(c), -np.sin(c)], [0, np.sin(c), np.cos(c)]])
    turn = rz @ ry @ rx
    g = SliceGeometry.checked(position, [*turn[:, 0], *turn[:, 1]], spacing, 7, 5)
    n = np.asarray(normal) / np.linalg.norm(normal)
    plane = FacePlane((float(n[0]), float(n[1]), float(n[2])), offset)
    distance = g.points() @ n - offset
    mask = plane.slice_mask(g)
    clear = np.abs(distance) > 1e-6  # points on the plane may round either way
    assert np.array_equal(mask[clear], (distance > 0)[clear])
