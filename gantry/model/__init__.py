"""The object model: Patient ▸ Study ▸ Series ▸ Instance, lazy pixels, persisted edits.

Nodes are thin views over rows of the ``instances`` index; building the tree
reads no DICOM file. Edits are kept in memory and persisted by
:meth:`gantry.Session.save` in the catalog (``edits``, ``pixel_edits``) and the
pixel sidecar; originals are never touched. The export stage reads the saved
state through :func:`load_edits`, :func:`excluded_file_ids`,
:func:`pixel_edit_locations` and :func:`read_pixel_edit`.
"""

from gantry.model._collection import Collection
from gantry.model._edits import (
    SaveResult,
    excluded_file_ids,
    load_edits,
    pixel_edit_locations,
    read_pixel_edit,
)
from gantry.model._model import Model
from gantry.model._nodes import Instance, Node, Patient, Series, Study

__all__ = [
    "Collection",
    "Instance",
    "Model",
    "Node",
    "Patient",
    "SaveResult",
    "Series",
    "Study",
    "excluded_file_ids",
    "load_edits",
    "pixel_edit_locations",
    "read_pixel_edit",
]
