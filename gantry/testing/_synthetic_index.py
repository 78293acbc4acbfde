"""A synthetic session index, written straight as Parquet batches (no DICOM files).

:func:`make_synthetic_index` fills a :class:`~gantry.store.Store` with ``instances``,
``elements`` and ``skipped`` shards shaped exactly like the ones ingest writes
(see ``docs/internals.md``), so the object model, the audit and the identity
stages can be exercised and benchmarked at a million instances without a
million files.  Values are realistic: people's names, IDs, birth dates, study
dates, addresses, phone numbers, physicians and free text that mentions the
patient, in public and private elements and inside nested sequences.

Everything is generated column-wise with numpy and Polars from one seed, one
batch at a time (bounded memory); the same arguments give the same index.
The paths point to files that do not exist (``parser`` is ``"synthetic"``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from pydicom.datadict import dictionary_VM, dictionary_VR, tag_for_keyword

from gantry.ingest._batch import ELEMENTS_SCHEMA, INSTANCES_SCHEMA, SKIPPED_SCHEMA
from gantry.ingest._ids import file_id

if TYPE_CHECKING:
    from gantry.store import Store

__all__ = ["make_synthetic_index"]

_UID_ROOT = "1.2.826.0.1.3680043.10.543"
_EPOCH = np.datetime64("1970-01-01", "D")

_FAMILY = (
    "ABERNATHY", "BRENNAN", "CASTELLANO", "DUBOIS", "EKWUEME", "FITZGERALD", "GRUBER",
    "HALVORSEN", "IBARRA", "JANSSEN", "KOWALSKI", "LINDQVIST", "MORIARTY", "NAKAMURA",
    "OKONKWO", "PETROVA", "QUINTERO", "RASMUSSEN", "SZABO", "TANAKA", "VANCE", "WOJCIK",
    "YAMADA", "ZIELINSKI", "ACHTERBERG", "BELLINI", "CHAUDHRY", "DELACROIX", "ESPOSITO",
    "FONSECA", "GALLAGHER", "HOFFMANN", "IVANOVA", "JOHANSSON", "KAPOOR", "LEBLANC",
    "MBEKI", "NGUYEN", "OYELARAN", "PRZYBYLSKI",
)  # fmt: skip
_GIVEN = {
    "F": ("AGNES", "BEATRIX", "CLARA", "DELPHINE", "EDITH", "FRIEDA", "GRETA", "HILDA",
          "IMOGEN", "JUNE", "KATRIN", "LUCIA", "MARISOL", "NADIA", "OLIVE", "PRIYA"),
    "M": ("ALBERT", "BORIS", "CORNELIUS", "DESMOND", "EGON", "FABIAN", "GUSTAV", "HORACE",
          "IGNATIUS", "JULIAN", "KASPAR", "LEOPOLD", "MATTEO", "NIKOLAI", "OSWALD", "PIERRE"),
}  # fmt: skip
_STREETS = ("Elm Street", "Harbour Road", "Mill Lane", "Quarry Avenue", "Station Way",
            "Orchard Close", "Beacon Hill", "Kings Parade")  # fmt: skip
_CITIES = ("Springfield", "Riverton", "Lakeside", "Fairview", "Oakdale", "Brookhaven")
_INSTITUTIONS = (
    ("St. Gantry General Hospital", "1 Infirmary Square, Riverton", "RIVERTON-MRN"),
    ("Lakeside Imaging Center", "400 Shore Drive, Lakeside", "LIC"),
    ("Oakdale University Clinic", "22 College Road, Oakdale", "OUC-PID"),
    ("Fairview Community Hospital", "9 Meadow Lane, Fairview", "FCH"),
)
_DEPARTMENTS = ("Radiology", "Emergency", "Cardiology", "Oncology", "Orthopaedics")
_PHYSICIANS = (
    "HOUSE^GREGORY", "QUINN^MICHAELA", "KILDARE^JAMES", "CHRISTIAN^ROSE", "GREENE^MARK",
    "YANG^CRISTINA", "ROSS^DOUGLAS", "BAILEY^MIRANDA", "CARTER^JOHN", "LEWIS^SUSAN",
)  # fmt: skip
_OPERATORS = ("TECH^ANNA", "TECH^BRUNO", "TECH^CHIARA", "TECH^DMITRI", "TECH^ELIF")

# modality: (weight, SOP class, rows, columns, samples, bits, spacing, thickness, body parts,
#            study descriptions, series descriptions, manufacturer, model, syntaxes)
_MODALITIES: dict[str, tuple] = {  # type: ignore[type-arg]
    "CT": (0.40, "1.2.840.10008.5.1.4.1.1.2", 512, 512, 1, 16, 0.703125, 1.25,
           ("CHEST", "HEAD", "ABDOMEN", "PELVIS"),
           ("CT CHEST W CONTRAST", "CT HEAD WO CONTRAST", "CT ABDOMEN PELVIS W"),
           ("AXIAL 1.25MM", "CORONAL MPR 3MM", "SCOUT", "SAGITTAL BONE"),
           ("GANTRY Medical Systems", "Helix 64"),
           ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2")),
    "MR": (0.25, "1.2.840.10008.5.1.4.1.1.4", 256, 256, 1, 16, 0.9375, 3.0,
           ("BRAIN", "KNEE", "LSPINE", "SHOULDER"),
           ("MRI BRAIN W/WO CONTRAST", "MR KNEE LEFT", "MR LUMBAR SPINE"),
           ("T1 SAG", "T2 AX FLAIR", "DWI B1000", "T1 AX POST"),
           ("GANTRY Medical Systems", "Magneto 3T"),
           ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.80")),
    "CR": (0.10, "1.2.840.10008.5.1.4.1.1.1", 2500, 2048, 1, 16, 0.139, None,
           ("CHEST", "HAND", "FOOT"), ("XR CHEST 2 VIEWS", "XR HAND LEFT 3 VIEWS"),
           ("PA", "LATERAL", "OBLIQUE"), ("RadiCorp", "CR-Reader 900"),
           ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.70")),
    "DX": (0.08, "1.2.840.10008.5.1.4.1.1.1.1", 3000, 2500, 1, 16, 0.148, None,
           ("CHEST", "KNEE"), ("DX CHEST PORTABLE", "DX KNEE RIGHT"),
           ("AP PORTABLE", "LATERAL"), ("RadiCorp", "DX Flat 43"),
           ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90")),
    "US": (0.10, "1.2.840.10008.5.1.4.1.1.6.1", 480, 640, 3, 8, None, None,
           ("ABDOMEN", "THYROID"), ("US ABDOMEN COMPLETE", "US THYROID"),
           ("LIVER", "RIGHT KIDNEY", "CINE"), ("Sonoria", "Sonoria S8"),
           ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.1")),
    "MG": (0.05, "1.2.840.10008.5.1.4.1.1.1.2", 4096, 3328, 1, 16, 0.065, None,
           ("BREAST",), ("MAMMO SCREENING BILATERAL",), ("L CC", "R CC", "L MLO", "R MLO"),
           ("RadiCorp", "Mammo One"), ("1.2.840.10008.1.2.4.90",)),
    "SC": (0.02, "1.2.840.10008.5.1.4.1.1.7", 1024, 1280, 3, 8, None, None,
           ("",), ("OUTSIDE IMAGES",), ("SCREEN CAPTURE",), ("GANTRY Workstation",
           "Capture Suite"), ("1.2.840.10008.1.2.1",)),
}  # fmt: skip
_MOD_NAMES = tuple(_MODALITIES)
_IMPL_CLASS_UID = _UID_ROOT + ".0.1"
_NATIVE = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")


# -- output schemas (docs/internals.md) -------------------------------------------------------

_FIXED = list(zip(INSTANCES_SCHEMA.names, INSTANCES_SCHEMA.types, strict=True))
_NUMERIC_VRS = {"DS": pa.float64(), "FL": pa.float64(), "FD": pa.float64()}
_INT_VRS = {"IS", "SS", "US", "SL", "UL", "SV", "UV"}


def _arrow_type(keyword: str) -> pa.DataType:
    """The column type of ``keyword`` per the contract: by VR, a list when VM is not 1."""
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    vr = dictionary_VR(tag)
    if vr in _NUMERIC_VRS:
        base = pa.float64()
    elif vr in _INT_VRS:
        base = pa.int64()
    elif vr == "DA":
        base = pa.date32()
    else:
        base = pa.string()
    return base if dictionary_VM(tag) == "1" else pa.list_(base)


# -- helpers ----------------------------------------------------------------------------------


def _choose(values: Sequence[str], codes: np.ndarray) -> pl.Series:
    """``values[codes]`` as a Polars string Series (vectorised)."""
    return pl.Series(list(values), dtype=pl.String).gather(pl.Series(codes, dtype=pl.Int64))


def _days(dates: np.ndarray) -> pl.Series:
    return pl.Series((dates.astype("datetime64[D]") - _EPOCH).astype(np.int32)).cast(pl.Date)


def _num(col: str, width: int) -> pl.Expr:
    return pl.col(col).cast(pl.String).str.zfill(width)


def _uid(kind: int, seed: int, col: str) -> pl.Expr:
    return pl.lit(f"{_UID_ROOT}.{seed}.{kind}.") + pl.col(col).cast(pl.String)


# -- the patients ▸ studies ▸ series tables (small: one row per entity) -------------------------


def _patient_table(rng: np.random.Generator, n: int) -> pl.DataFrame:
    sex = np.where(rng.random(n) < 0.5, "F", "M")
    given = np.where(
        sex == "F",
        _choose(_GIVEN["F"], rng.integers(0, len(_GIVEN["F"]), n)).to_numpy(),
        _choose(_GIVEN["M"], rng.integers(0, len(_GIVEN["M"]), n)).to_numpy(),
    )
    born = np.datetime64("1931-01-01") + rng.integers(0, 365 * 63, n).astype("timedelta64[D]")
    ids = 10_000_000 + rng.choice(89_999_999, n, replace=False)
    df = pl.DataFrame(
        {
            "PatientSex": sex,
            "_family": _choose(_FAMILY, rng.integers(0, len(_FAMILY), n)),
            "_given": pl.Series(given, dtype=pl.String),
            "_middle": _choose("ABCDEFGHJKLMNPRSTW", rng.integers(0, 18, n)),
            "PatientBirthDate": _days(born),
            "_pid": ids,
            "_house": rng.integers(1, 400, n),
            "_street": _choose(_STREETS, rng.integers(0, len(_STREETS), n)),
            "_city": _choose(_CITIES, rng.integers(0, len(_CITIES), n)),
            "_phone_a": rng.integers(200, 999, n),
            "_phone_b": rng.integers(1000, 9999, n),
            "_mrn": rng.integers(100_000, 999_999, n),
            "PatientWeight": np.round(rng.normal(75, 15, n).clip(3, 180), 1),
            "PatientSize": np.round(rng.normal(1.70, 0.1, n).clip(0.5, 2.1), 2),
            "_site": rng.integers(0, len(_INSTITUTIONS), n),
        }
    )
    return df.with_columns(
        PatientID=pl.col("_pid").cast(pl.String),
        PatientName=pl.concat_str(["_family", "_given", "_middle"], separator="^"),
        PatientAddress=pl.concat_str(
            [pl.col("_house").cast(pl.String), pl.lit(" "), "_street", pl.lit(", "), "_city"]
        ),
        PatientTelephoneNumbers=pl.concat_list(
            pl.concat_str(
                [
                    pl.lit("+1-555-"),
                    pl.col("_phone_a").cast(pl.String),
                    pl.lit("-"),
                    pl.col("_phone_b").cast(pl.String),
                ]
            )
        ),  # fmt: skip
        _other_id=pl.lit("MRN") + pl.col("_mrn").cast(pl.String),
        AdditionalPatientHistory=pl.concat_str(
            [
                pl.lit("Referred by family doctor; "),
                pl.col("_given").str.to_titlecase(),
                pl.lit(" "),
                pl.col("_family").str.to_titlecase(),
                pl.lit(" reports intermittent chest pain since last visit."),
            ]
        ),  # fmt: skip
    )


def _study_table(
    rng: np.random.Generator, n: int, seed: int, patients: pl.DataFrame
) -> pl.DataFrame:
    n_pat = patients.height
    # every patient has a first study; the others go to random patients (kept in order)
    owner = np.concatenate([np.arange(n_pat), rng.integers(0, n_pat, n - n_pat)])
    owner.sort()
    weights = np.array([_MODALITIES[m][0] for m in _MOD_NAMES])
    mod = rng.choice(len(_MOD_NAMES), n, p=weights / weights.sum())
    born = patients["PatientBirthDate"].to_numpy()[owner].astype("datetime64[D]")
    first = np.maximum(born + np.timedelta64(365 * 18, "D"), np.datetime64("2005-01-01"))
    span = (np.datetime64("2024-12-31") - first).astype(np.int64).clip(1, None)
    date = first + (rng.random(n) * span).astype(np.int64).astype("timedelta64[D]")
    age = ((date - born).astype(np.int64) // 365).clip(0, 999)
    site = patients["_site"].to_numpy()[owner]
    site = np.where(rng.random(n) < 0.15, rng.integers(0, len(_INSTITUTIONS), n), site)
    descs = [_MODALITIES[m][9] for m in _MOD_NAMES]
    pick = rng.integers(0, 1 << 30, n)
    desc = [descs[m][k % len(descs[m])] for m, k in zip(mod.tolist(), pick.tolist(), strict=True)]
    return pl.DataFrame(
        {
            "_study": np.arange(n),
            "_patient": owner,
            "_mod": mod,
            "StudyDate": _days(date),
            "PatientAge": pl.Series(age).cast(pl.String).str.zfill(3) + "Y",
            "_site": site,
            "StudyTime": (
                pl.Series(rng.integers(7, 20, n)).cast(pl.String).str.zfill(2)
                + pl.Series(rng.integers(0, 60, n)).cast(pl.String).str.zfill(2)
                + pl.Series(rng.integers(0, 60, n)).cast(pl.String).str.zfill(2)
                + ".000000"
            ),
            "AccessionNumber": "A"
            + pl.Series(rng.integers(10_000_000, 99_999_999, n)).cast(pl.String),
            "StudyID": pl.Series(rng.integers(1, 99_999, n)).cast(pl.String),
            "StudyDescription": pl.Series(desc, dtype=pl.String),
            "ReferringPhysicianName": _choose(_PHYSICIANS, rng.integers(0, len(_PHYSICIANS), n)),
            "_phys_code": pl.Series(rng.integers(1000, 9999, n)),
            "InstitutionName": _choose([i[0] for i in _INSTITUTIONS], site),
            "InstitutionAddress": _choose([i[1] for i in _INSTITUTIONS], site),
            "IssuerOfPatientID": _choose([i[2] for i in _INSTITUTIONS], site),
            "InstitutionalDepartmentName": _choose(
                _DEPARTMENTS, rng.integers(0, len(_DEPARTMENTS), n)
            ),
            "_req": pl.Series(rng.integers(100_000, 999_999, n)),
        }
    ).with_columns(StudyInstanceUID=_uid(1, seed, "_study"))


def _series_table(
    rng: np.random.Generator, n: int, seed: int, studies: pl.DataFrame, per_study: int
) -> pl.DataFrame:
    study = np.arange(n) // per_study
    mod = studies["_mod"].to_numpy()[study]
    site = studies["_site"].to_numpy()[study]
    spec = [_MODALITIES[m] for m in _MOD_NAMES]

    def per_mod(i: int) -> np.ndarray:
        values = np.array([s[i] if s[i] is not None else np.nan for s in spec], dtype=float)
        out: np.ndarray = values[mod]
        return out

    rows, cols, samples, bits = (per_mod(k).astype(np.int64) for k in (2, 3, 4, 5))
    spacing, thickness = per_mod(6), per_mod(7)
    k = rng.integers(0, 1 << 30, n)

    def pick(i: int) -> pl.Series:
        return pl.Series(
            [
                spec[m][i][j % len(spec[m][i])]
                for m, j in zip(mod.tolist(), k.tolist(), strict=True)
            ],
            dtype=pl.String,
        )

    device = site * 4 + rng.integers(0, 2, n)  # two scanners of each kind per site
    df = pl.DataFrame(
        {
            "_series": np.arange(n),
            "_study": study,
            "SeriesNumber": (np.arange(n) % per_study) + 1,
            "Modality": _choose(_MOD_NAMES, mod),
            "SOPClassUID": _choose([s[1] for s in spec], mod),
            "Rows": rows,
            "Columns": cols,
            "SamplesPerPixel": samples,
            "BitsAllocated": bits,
            "BitsStored": np.where(bits == 16, 12, 8),
            "HighBit": np.where(bits == 16, 11, 7),
            "PixelRepresentation": np.where(mod == _MOD_NAMES.index("CT"), 1, 0),
            "PhotometricInterpretation": pl.Series(
                np.where(samples == 3, "RGB", "MONOCHROME2"), dtype=pl.String
            ),
            "_spacing": spacing,
            "SliceThickness": thickness,
            "BodyPartExamined": pick(8),
            "SeriesDescription": pick(10),
            "Manufacturer": _choose([s[11][0] for s in spec], mod),
            "ManufacturerModelName": _choose([s[11][1] for s in spec], mod),
            "transfer_syntax": pick(12),
            "DeviceSerialNumber": "SN"
            + pl.Series(device * 7919 + mod * 104_729 + 100_000).cast(pl.String),
            "StationName": (
                _choose(_MOD_NAMES, mod) + "-" + pl.Series(device).cast(pl.String).str.zfill(3)
            ),
            "SoftwareVersions": pl.Series(
                [
                    f"{m}-{v}.{v % 3}"
                    for m, v in zip(mod.tolist(), (device % 5).tolist(), strict=True)
                ]
            ),
            "ProtocolName": pick(10),
            "PerformingPhysicianName": _choose(_PHYSICIANS, rng.integers(0, len(_PHYSICIANS), n)),
            "OperatorsName": _choose(_OPERATORS, rng.integers(0, len(_OPERATORS), n)),
            "BurnedInAnnotation": pl.Series(
                np.where(
                    np.isin(mod, [_MOD_NAMES.index("US"), _MOD_NAMES.index("SC")]), "YES", "NO"
                ),
                dtype=pl.String,
            ),
            "_z0": np.round(rng.uniform(-400, 0, n), 2),
        }
    )
    return df.with_columns(
        SeriesInstanceUID=_uid(2, seed, "_series"),
        FrameOfReferenceUID=_uid(3, seed, "_study"),
        PixelSpacing=pl.when(pl.col("_spacing").is_not_nan()).then(
            pl.concat_list(pl.col("_spacing"), pl.col("_spacing"))
        ),
        SliceThickness=pl.col("SliceThickness").fill_nan(None),
        SoftwareVersions=pl.concat_list("SoftwareVersions"),
        PerformingPhysicianName=pl.concat_list("PerformingPhysicianName"),
        OperatorsName=pl.concat_list("OperatorsName"),
    )


# -- one chunk of instances ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """What to generate (fixed for the whole index)."""

    seed: int
    per_series: int
    patients: pl.DataFrame
    studies: pl.DataFrame
    series: pl.DataFrame


def _instance_chunk(plan: _Plan, lo: int, hi: int, rng: np.random.Generator) -> pl.DataFrame:
    """Every candidate column for instances ``lo..hi`` (helpers prefixed ``_``)."""
    idx = np.arange(lo, hi)
    series = idx // plan.per_series
    number = idx % plan.per_series + 1
    ser = plan.series[series]
    stu = plan.studies[ser["_study"].to_numpy()]
    pat = plan.patients[stu["_patient"].to_numpy()]
    # join the three levels side by side; a helper column repeated below is kept once
    seen: set[str] = set()
    parts = []
    for level in (ser, stu, pat):
        parts.append(level.select([c for c in level.columns if c not in seen]))
        seen.update(level.columns)
    df = pl.concat(parts, how="horizontal")
    n = hi - lo
    seed = plan.seed
    raw = (
        df["Rows"] * df["Columns"] * df["SamplesPerPixel"] * (df["BitsAllocated"] // 8)
    ).to_numpy()
    is_native = df["transfer_syntax"].is_in(_NATIVE).to_numpy()
    pixel_bytes = np.where(
        is_native, raw, (raw * rng.uniform(0.3, 0.55, n)).astype(np.int64) // 2 * 2
    )
    header = rng.integers(600, 1500, n) * 2
    elem_header = np.where(is_native, 12, 12 + 8 + 8 + 8)
    comment = rng.random(n)
    df = df.with_columns(_idx=pl.Series(idx), _series_idx=pl.Series(series))
    df = df.with_columns(
        InstanceNumber=pl.Series(number),
        SOPInstanceUID=_uid(4, seed, "_idx"),
        _ref_sop=pl.lit(f"{_UID_ROOT}.{seed}.4.")
        + pl.Series(np.maximum(idx - 1, idx - number + 1)).cast(pl.String),
        SliceLocation=pl.Series(np.round(number * 1.25, 2)) + pl.col("_z0"),
        pixel_offset=pl.Series(header),
        pixel_length=pl.Series(pixel_bytes + elem_header),
        file_mtime=pl.Series(1.70e9 + rng.uniform(0, 3.0e7, n)),
        ImageComments=pl.when(pl.Series(comment < 0.05))
        .then(
            pl.lit("Repeat acquisition, patient ") + pl.col("_family").str.to_titlecase() + " moved"
        )
        .when(pl.Series(comment < 0.15))
        .then(pl.lit("Contrast: IV Omnipaque 350"))
        .otherwise(None),
        ContentTime=pl.col("StudyTime"),
    )
    df = df.with_columns(
        file_size=pl.col("pixel_offset") + pl.col("pixel_length"),
        ImagePositionPatient=pl.concat_list(
            pl.lit(-180.0), pl.lit(-180.0), pl.col("SliceLocation")
        ),
        ImageOrientationPatient=pl.concat_list([pl.lit(v) for v in (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)]),
        ImageType=pl.concat_list(pl.lit("ORIGINAL"), pl.lit("PRIMARY"), pl.lit("AXIAL")),
        SpecificCharacterSet=pl.concat_list(pl.lit("ISO_IR 100")),
        SeriesDate=pl.col("StudyDate"),
        ContentDate=pl.col("StudyDate"),
        AcquisitionDate=pl.col("StudyDate"),
        InstanceCreationDate=pl.col("StudyDate"),
        MediaStorageSOPClassUID=pl.col("SOPClassUID"),
        MediaStorageSOPInstanceUID=pl.col("SOPInstanceUID"),
        TransferSyntaxUID=pl.col("transfer_syntax"),
        ImplementationClassUID=pl.lit(_IMPL_CLASS_UID),
        ImplementationVersionName=pl.lit("GANTRY_SYNTH_1"),
        FileMetaInformationGroupLength=pl.lit(196, dtype=pl.Int64),
        parser=pl.lit("synthetic"),
        file_path=pl.concat_str(
            [
                pl.lit(f"/synthetic/index-{seed}/P"),
                _num("_patient", 7),
                pl.lit("/ST"),
                _num("_study", 7),
                pl.lit("/SE"),
                _num("_series_idx", 8),
                pl.lit("/IM"),
                _num("_idx", 9),
                pl.lit(".dcm"),
            ]
        ),  # fmt: skip
    )
    ids = [file_id(p) for p in df["file_path"].to_list()]
    return df.with_columns(file_id=pl.Series(ids, dtype=pl.Int64)).sort("file_id")


# -- element templates --------------------------------------------------------------------------


@dataclass(frozen=True)
class _El:
    path: str
    vr: str | pl.Expr
    value: pl.Expr | None  # text; None → null
    length: pl.Expr | int | None = None  # None → byte length of the padded value
    creator: str | None = None
    value_hash: pl.Expr | None = None
    keyword: str | None = None

    @property
    def tag(self) -> str:
        return self.path.rsplit(".", 1)[-1].split("[")[0]

    @property
    def depth(self) -> int:
        return self.path.count(".")


def _text(keyword: str, typ: pa.DataType) -> pl.Expr:
    col = pl.col(keyword)
    if pa.types.is_list(typ):
        return col.list.eval(pl.element().cast(pl.String)).list.join("\\")
    if pa.types.is_date32(typ):
        return col.dt.strftime("%Y%m%d")
    return col.cast(pl.String)


def _kw_el(keyword: str) -> _El:
    tag = tag_for_keyword(keyword)
    assert tag is not None
    return _El(
        f"{tag:08X}", dictionary_VR(tag), _text(keyword, _arrow_type(keyword)), keyword=keyword
    )


def _sub(path: str, keyword: str, value: pl.Expr | None) -> _El:
    tag = tag_for_keyword(keyword)
    assert tag is not None
    return _El(path, dictionary_VR(tag), value, keyword=keyword)


def _seq(path: str, keyword: str) -> _El:
    return _El(path, "SQ", None, length=1, keyword=keyword)


def _hash_expr(salt: str) -> pl.Expr:
    h = pl.concat_str([pl.lit(salt), pl.col("file_id").cast(pl.String)]).hash(7)
    return h.cast(pl.String).str.zfill(20).str.slice(0, 16) + h.cast(pl.String).str.zfill(
        16
    ).str.slice(0, 16)


# The brief's core attributes: always columns of `instances` and rows of `elements`.
REQUIRED_KEYWORDS = (
    "SOPClassUID", "SOPInstanceUID", "StudyDate", "StudyTime", "AccessionNumber", "Modality",
    "Manufacturer", "InstitutionName", "ReferringPhysicianName", "StudyDescription",
    "SeriesDescription", "ManufacturerModelName", "PatientName", "PatientID",
    "PatientBirthDate", "PatientSex", "DeviceSerialNumber", "SliceThickness",
    "StudyInstanceUID", "SeriesInstanceUID", "StudyID", "SeriesNumber", "InstanceNumber",
    "SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns", "PixelSpacing",
    "BitsAllocated", "BurnedInAnnotation",
)  # fmt: skip


def _optional_units() -> list[list[_El]]:
    """Further elements in priority order; a unit (a sequence, a private block) is kept whole."""
    kw = _kw_el
    units: list[list[_El]] = [
        [
            _seq("00081140", "ReferencedImageSequence"),
            _sub("00081140[0].00081150", "ReferencedSOPClassUID", pl.col("SOPClassUID")),
            _sub("00081140[0].00081155", "ReferencedSOPInstanceUID", pl.col("_ref_sop")),
        ],
        [
            _El(
                "7FE00010",
                pl.when(pl.col("transfer_syntax").is_in(_NATIVE)).then(pl.lit("OW")).otherwise(pl.lit("OB")),
                None,
                length=pl.col("pixel_length") - 12,
                keyword="PixelData",
            ),
        ],
        [
            _El("00090010", "LO", pl.lit("GANTRY SYNTH 1"), creator="GANTRY SYNTH 1"),
            _El("00091001", "LO", pl.lit("Pt ") + pl.col("PatientName") + ", ID " + pl.col("PatientID") + " verified", creator="GANTRY SYNTH 1"),
            _El("00091002", "DA", pl.col("StudyDate").dt.strftime("%Y%m%d"), creator="GANTRY SYNTH 1"),
            _El("00091010", "OB", None, length=16, creator="GANTRY SYNTH 1", value_hash=_hash_expr("p1")),
        ],
        [
            _seq("00101002", "OtherPatientIDsSequence"),
            _sub("00101002[0].00100020", "PatientID", pl.col("_other_id")),
            _sub("00101002[0].00100021", "IssuerOfPatientID", pl.lit("OUTSIDE-HOSP")),
            _sub("00101002[0].00100022", "TypeOfPatientID", pl.lit("TEXT")),
        ],
        [
            _seq("00080096", "ReferringPhysicianIdentificationSequence"),
            _seq("00080096[0].00401101", "PersonIdentificationCodeSequence"),
            _sub("00080096[0].00401101[0].00080100", "CodeValue", pl.lit("DR") + pl.col("_phys_code").cast(pl.String)),
            _sub("00080096[0].00401101[0].00080102", "CodingSchemeDesignator", pl.lit("L")),
            _sub("00080096[0].00401101[0].00080104", "CodeMeaning", pl.col("ReferringPhysicianName")),
            _sub("00080096[0].00080080", "InstitutionName", pl.col("InstitutionName")),
        ],
        [kw("AdditionalPatientHistory")],
        [kw("PatientAge")],
        [kw("PatientAddress")],
        [kw("PatientTelephoneNumbers")],
        [kw("InstitutionAddress")],
        [kw("StationName")],
        [kw("PerformingPhysicianName")],
        [kw("OperatorsName")],
        [
            _seq("00400275", "RequestAttributesSequence"),
            _sub("00400275[0].00401001", "RequestedProcedureID", pl.lit("RP") + pl.col("_req").cast(pl.String)),
            _sub("00400275[0].00400009", "ScheduledProcedureStepID", pl.lit("SPS") + pl.col("_req").cast(pl.String)),
            _sub("00400275[0].00321060", "RequestedProcedureDescription", pl.col("StudyDescription")),
        ],
        [kw("ImageComments")],
        [kw("ImagePositionPatient")],
        [kw("ImageOrientationPatient")],
        [kw("SliceLocation")],
        [kw("FrameOfReferenceUID")],
        [kw("BitsStored")],
        [kw("HighBit")],
        [kw("PixelRepresentation")],
        [kw("ImageType")],
        [kw("SpecificCharacterSet")],
        [kw("SeriesDate")],
        [kw("ContentDate")],
        [kw("ContentTime")],
        [kw("AcquisitionDate")],
        [kw("InstanceCreationDate")],
        [kw("BodyPartExamined")],
        [kw("ProtocolName")],
        [kw("SoftwareVersions")],
        [kw("IssuerOfPatientID")],
        [kw("InstitutionalDepartmentName")],
        [kw("PatientWeight")],
        [kw("PatientSize")],
        [
            _seq("00081032", "ProcedureCodeSequence"),
            _sub("00081032[0].00080100", "CodeValue", pl.lit("P") + pl.col("_req").cast(pl.String).str.slice(0, 4)),
            _sub("00081032[0].00080102", "CodingSchemeDesignator", pl.lit("GANTRY")),
            _sub("00081032[0].00080104", "CodeMeaning", pl.col("StudyDescription")),
        ],
        [
            _El("00190010", "LO", pl.lit("ACME_CT 3.1"), creator="ACME_CT 3.1"),
            _El("00191008", "LO", pl.lit("HELIX_RECON"), creator="ACME_CT 3.1"),
            _El("0019100A", "US", pl.col("InstanceNumber").cast(pl.String), creator="ACME_CT 3.1"),
        ],
        [
            kw("FileMetaInformationGroupLength"),
            _El("00020001", "OB", None, length=2, keyword="FileMetaInformationVersion", value_hash=pl.lit("00010000000000000000000000000000")),
            kw("MediaStorageSOPClassUID"),
            kw("MediaStorageSOPInstanceUID"),
            kw("TransferSyntaxUID"),
            kw("ImplementationClassUID"),
            kw("ImplementationVersionName"),
        ],
    ]  # fmt: skip
    return units


def _templates(k: int) -> list[_El]:
    """``k`` element templates (at least the required ones), sorted by path."""
    chosen = [_kw_el(kw) for kw in REQUIRED_KEYWORDS]
    for unit in _optional_units():
        if len(chosen) + len(unit) > k:
            break
        chosen.extend(unit)
    for j in range(k - len(chosen)):
        # private blocks of 0029: a creator (0029,00bb) then up to 255 data elements (0029,bbxx)
        block, slot = 0x10 + j // 256, j % 256
        creator = f"GANTRY FILLER {block - 0x10}"
        if slot == 0:
            chosen.append(_El(f"002900{block:02X}", "LO", pl.lit(creator), creator=creator))
        else:
            value = pl.lit(f"F{j}-") + pl.col("InstanceNumber").cast(pl.String)
            chosen.append(_El(f"0029{block:02X}{slot:02X}", "LO", value, creator=creator))
    return sorted(chosen, key=lambda e: e.path)


_BULK_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN", "SQ"})


def _instance_schema(templates: list[_El]) -> pa.Schema:
    keywords = [
        t.keyword
        for t in templates
        if t.depth == 0
        and t.keyword
        and t.creator is None
        and isinstance(t.vr, str)
        and t.vr not in _BULK_VRS
    ]
    return pa.schema(_FIXED + [(kw, _arrow_type(kw)) for kw in keywords])


def _as_text(e: pl.Expr | str | None) -> pl.Expr:
    if e is None or isinstance(e, str):
        return pl.lit(e, dtype=pl.String)
    return e.cast(pl.String)


def _length(t: _El) -> pl.Expr:
    if isinstance(t.length, int):
        return pl.lit(t.length, dtype=pl.Int64)
    if t.length is not None:
        return t.length.cast(pl.Int64)
    assert t.value is not None
    n = t.value.str.len_bytes().cast(pl.Int64)
    return (n + n % 2).fill_null(0)


def _element_tables(
    chunk: pl.DataFrame, templates: list[_El], slice_rows: int
) -> Iterator[pa.Table]:
    """``elements`` rows of ``chunk``, one table per slice of ``slice_rows`` instances.

    Within a slice rows are element-major (cheap to build); the chunk is sorted by
    ``file_id``, so each slice, written as one row group, covers a narrow ``file_id``
    range and a reader looking for one instance skips the other row groups.
    """
    k = len(templates)
    wide = chunk.select(
        "file_id",
        *[_as_text(t.value).alias(f"v{i}") for i, t in enumerate(templates)],
        *[_length(t).alias(f"n{i}") for i, t in enumerate(templates)],
        *[_as_text(t.value_hash).alias(f"h{i}") for i, t in enumerate(templates)],
        *[_as_text(t.vr).alias(f"r{i}") for i, t in enumerate(templates)],
    )
    static = pl.DataFrame(
        {
            "path": [t.path for t in templates],
            "tag": [t.tag for t in templates],
            "depth": pl.Series([t.depth for t in templates], dtype=pl.Int16),
            "keyword": pl.Series([t.keyword for t in templates], dtype=pl.String),
            "private_creator": pl.Series([t.creator for t in templates], dtype=pl.String),
        }
    )
    for lo in range(0, wide.height, slice_rows):
        w = wide.slice(lo, slice_rows)
        rep = pl.Series(np.repeat(np.arange(k), w.height))
        cols = static[rep].with_columns(
            file_id=pl.Series(np.tile(w["file_id"].to_numpy(), k)),
            vr=pl.concat([w[f"r{i}"] for i in range(k)]),
            value=pl.concat([w[f"v{i}"] for i in range(k)]),
            length=pl.concat([w[f"n{i}"] for i in range(k)]),
            value_hash=pl.concat([w[f"h{i}"] for i in range(k)]),
        )
        yield cols.select(ELEMENTS_SCHEMA.names).to_arrow().cast(ELEMENTS_SCHEMA)


def _skipped_table(rng: np.random.Generator, seed: int, batch: int, n: int) -> pa.Table:
    reasons = ("not_dicom", "empty", "truncated", "dicomdir", "unreadable")
    details = ("no DICM prefix and no valid implicit VR header", "file is empty",
               "file ends inside element (7FE0,0010)", "DICOMDIR is an index, not an instance",
               "invalid value length in element (0008,0005)")  # fmt: skip
    code = rng.integers(0, len(reasons), n)
    df = pl.DataFrame(
        {
            "file_path": [
                f"/synthetic/index-{seed}/junk/b{batch:05d}-{j:05d}.bin" for j in range(n)
            ],
            "file_size": np.where(code == 1, 0, rng.integers(10, 200_000, n)),
            "file_mtime": 1.70e9 + rng.uniform(0, 3.0e7, n),
            "reason": _choose(reasons, code),
            "detail": _choose(details, code),
        }
    )
    return df.to_arrow().cast(SKIPPED_SCHEMA)


def make_synthetic_index(
    store: Store,
    n_instances: int,
    *,
    patients: int | None = None,
    instances_per_series: int = 100,
    series_per_study: int = 3,
    elements_per_instance: int = 60,
    seed: int = 0,
    batch_rows: int = 100_000,
) -> None:
    """Write a realistic synthetic index of ``n_instances`` into ``store``.

    One committed ingest batch is written per ``batch_rows`` instances, each with
    ``instances.parquet``, ``elements.parquet`` and ``skipped.parquet`` shaped as
    ingest writes them, so every later stage reads it like a real index. No DICOM
    file is written; ``file_path`` names files that do not exist.

    Parameters
    ----------
    store : Store
        A store open for writing.
    n_instances : int
        Instances to index.
    patients : int, optional
        Number of patients (default: about one per two studies). Every patient has at
        least one study; it is capped at the number of studies.
    instances_per_series, series_per_study : int
        Shape of the hierarchy (the last series and study may be shorter).
    elements_per_instance : int
        Rows of ``elements`` per instance. The core attributes (``REQUIRED_KEYWORDS``)
        are always present; then, in order, nested sequences, PixelData, private
        blocks with PHI, further public attributes (each also an ``instances``
        column), file meta, and private filler elements up to the count.
    seed : int
        Same seed, same index.
    batch_rows : int
        Instances per committed batch (memory is bounded by this).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from gantry.store import Store
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> with Store(tmp / "s.db") as store:
    ...     make_synthetic_index(store, 250, instances_per_series=50)
    ...     print(store.sql("SELECT count(*) AS n, count(DISTINCT SeriesInstanceUID) AS s,"
    ...                     " (SELECT count(*) FROM elements) AS e FROM instances").row(0))
    (250, 5, 15000)
    """
    if n_instances < 1:
        raise ValueError(f"`n_instances` must be at least 1, got {n_instances!r}")
    rng = np.random.default_rng(seed)
    n_series = math.ceil(n_instances / instances_per_series)
    n_studies = math.ceil(n_series / series_per_study)
    n_patients = min(n_studies, patients if patients is not None else math.ceil(n_studies / 2))
    pats = _patient_table(rng, max(1, n_patients))
    studies = _study_table(rng, n_studies, seed, pats)
    plan = _Plan(
        seed=seed,
        per_series=instances_per_series,
        patients=pats,
        studies=studies,
        series=_series_table(rng, n_series, seed, studies, series_per_study),
    )
    templates = _templates(elements_per_instance)
    schema = _instance_schema(templates)
    # elements are written one row group per slice of instances (bounded memory)
    slice_rows = max(1, 250_000 // len(templates))
    for batch, lo in enumerate(range(0, n_instances, batch_rows)):
        hi = min(n_instances, lo + batch_rows)
        chunk = _instance_chunk(plan, lo, hi, np.random.default_rng([seed, batch]))
        stage = store.stage_dir("batch")
        pq.write_table(
            chunk.select(schema.names).to_arrow().cast(schema),
            stage / "instances.parquet",
            compression="zstd",
        )
        with pq.ParquetWriter(stage / "elements.parquet", ELEMENTS_SCHEMA, compression="zstd") as w:
            for table in _element_tables(chunk, templates, slice_rows):
                w.write_table(table, row_group_size=table.num_rows)
        skipped = _skipped_table(
            np.random.default_rng([seed, batch, 1]), seed, batch, (hi - lo) // 500
        )
        pq.write_table(skipped, stage / "skipped.parquet", compression="zstd")
        store.commit_batch(Path(stage))
    store.refresh_views()
