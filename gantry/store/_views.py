"""SQL of the ``patients``, ``studies``, ``series`` and ``duplicates`` views.

The views are built from whatever columns ``instances`` has: an attribute absent
from every indexed file is simply NULL in the view.
"""

from __future__ import annotations

SERIES_KEY_ATTRIBUTES = (
    "Rows",
    "Columns",
    "SliceThickness",
    "PixelSpacing",
    "ImageOrientationPatient",
    "PhotometricInterpretation",
    "BitsAllocated",
    "SamplesPerPixel",
    "SOPClassUID",
    "Manufacturer",
    "ManufacturerModelName",
    "transfer_syntax",
)
"""Attributes whose distinct count per series is shown (a series is not assumed homogeneous)."""


def _col(columns: set[str], name: str, cast: str = "VARCHAR") -> str:
    return f'"{name}"' if name in columns else f"NULL::{cast}"


def hierarchy_views(columns: set[str]) -> dict[str, str]:
    """Return ``{view name: SELECT …}`` for the hierarchy views over ``instances``.

    Examples
    --------
    >>> views = hierarchy_views({"PatientID", "StudyInstanceUID", "SeriesInstanceUID"})
    >>> sorted(views)
    ['duplicates', 'patients', 'series', 'studies']
    """

    def c(name: str, cast: str = "VARCHAR") -> str:
        return _col(columns, name, cast)

    study_date = c("StudyDate", "DATE")
    patients = f"""
        SELECT {c("PatientID")} AS PatientID,
               any_value({c("PatientName")}) AS PatientName,
               count(DISTINCT {c("StudyInstanceUID")}) AS n_studies,
               count(DISTINCT {c("SeriesInstanceUID")}) AS n_series,
               count(*) AS n_instances,
               min({study_date}) AS first_study_date,
               max({study_date}) AS last_study_date,
               list_sort(list_distinct(list({c("Modality")}))) AS modalities,
               sum(file_size)::BIGINT AS bytes
        FROM instances GROUP BY 1
    """
    studies = f"""
        SELECT {c("StudyInstanceUID")} AS StudyInstanceUID,
               any_value({c("PatientID")}) AS PatientID,
               min({study_date}) AS StudyDate,
               any_value({c("StudyDescription")}) AS StudyDescription,
               any_value({c("AccessionNumber")}) AS AccessionNumber,
               count(DISTINCT {c("SeriesInstanceUID")}) AS n_series,
               count(*) AS n_instances,
               list_sort(list_distinct(list({c("Modality")}))) AS modalities,
               sum(file_size)::BIGINT AS bytes
        FROM instances GROUP BY 1
    """
    distinct = ",\n".join(
        f'count(DISTINCT {c(a)}) AS "n_distinct_{a}"' for a in SERIES_KEY_ATTRIBUTES
    )
    homogeneous = " AND ".join(f"count(DISTINCT {c(a)}) <= 1" for a in SERIES_KEY_ATTRIBUTES)
    series = f"""
        SELECT {c("SeriesInstanceUID")} AS SeriesInstanceUID,
               any_value({c("StudyInstanceUID")}) AS StudyInstanceUID,
               any_value({c("PatientID")}) AS PatientID,
               any_value({c("Modality")}) AS Modality,
               any_value({c("SeriesDescription")}) AS SeriesDescription,
               min({c("SeriesNumber", "BIGINT")}) AS SeriesNumber,
               any_value({c("Manufacturer")}) AS Manufacturer,
               count(*) AS n_instances,
               sum(file_size)::BIGINT AS bytes,
               {distinct},
               ({homogeneous}) AS is_homogeneous
        FROM instances GROUP BY 1
    """
    duplicates = f"""
        SELECT {c("SOPInstanceUID")} AS SOPInstanceUID, count(*) AS n_paths,
               list_sort(list(file_path)) AS file_paths
        FROM instances WHERE {c("SOPInstanceUID")} IS NOT NULL
        GROUP BY 1 HAVING count(*) > 1
    """
    return {"patients": patients, "studies": studies, "series": series, "duplicates": duplicates}
