"""Defacing of 3D head CT and MR series: a shear plane removes the face.

The flow: :func:`fit_face_plane` finds, once per series, a plane in patient
coordinates (LPS) that keeps the brain and cuts off the face (a Quickshear-like
method, see ``docs/deface.md``); :meth:`FacePlane.slice_mask` gives each
slice's face-side pixels from the slice's own geometry, so export workers
blank them instance by instance.  :func:`deface_series` runs the first step on
series in a session store and records the ``deface`` table;
:func:`render_deface_preview` draws before/after sagittal projections as PNG.

Needs scipy: ``pip install 'gantry[deface]'``.

Examples
--------
>>> from gantry.deface import FacePlane, SliceGeometry
>>> g = SliceGeometry((0.0, -100.0, 0.0), (1, 0, 0, 0, 1, 0), (10.0, 10.0), 3, 1)
>>> FacePlane((0.0, -1.0, 0.0), 85.0).slice_mask(g).ravel().tolist()
[True, True, False]
"""

from gantry.deface._geometry import FacePlane, SliceGeometry, stack_slices
from gantry.deface._render import DefacePreview, render_deface_preview, side_projection
from gantry.deface._series import DEFACE_SCHEMA, deface_series, load_volume
from gantry.deface._shear import ShearFit, fit_face_plane

__all__ = [
    "DEFACE_SCHEMA",
    "DefacePreview",
    "FacePlane",
    "ShearFit",
    "SliceGeometry",
    "deface_series",
    "fit_face_plane",
    "load_volume",
    "render_deface_preview",
    "side_projection",
    "stack_slices",
]
