"""Export: apply the plan per instance, verify the bytes, write manifests and maps."""

from gantry.export._maps import write_maps
from gantry.export._runner import MANIFEST_COLUMNS, ExportResult, run_export

__all__ = ["MANIFEST_COLUMNS", "ExportResult", "run_export", "write_maps"]
