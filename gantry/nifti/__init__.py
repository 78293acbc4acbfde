"""NIfTI and BIDS export of de-identified series: ``Session.export_nifti``.

A series becomes ``.nii.gz`` (nibabel) with a JSON sidecar, plus ``.bval``/``.bvec``
for diffusion; in the BIDS layout files go to ``sub-<pseudonym>/ses-<n>/<datatype>/``
with ``dataset_description.json`` and ``participants.tsv``. The conversion reads
only the verified de-identified copies; each series' outcome is a row of the
``conversions`` table. Needs ``pip install 'gantry[nifti]'``.

Examples
--------
>>> from gantry.nifti import DEFAULT_BIDS_RULES
>>> [(r.datatype, r.suffix) for r in DEFAULT_BIDS_RULES][:2]
[('dwi', 'dwi'), ('func', 'bold')]
"""

from gantry.nifti._rules import DEFAULT_BIDS_RULES, BidsRule, load_bids_rules
from gantry.nifti._runner import CONVERSIONS_TABLE, NiftiResult, run_nifti_export

__all__ = [
    "CONVERSIONS_TABLE",
    "DEFAULT_BIDS_RULES",
    "BidsRule",
    "NiftiResult",
    "load_bids_rules",
    "run_nifti_export",
]
