"""Run a NIfTI/BIDS export: stage a verified DICOM export, convert it series by series.

The conversion never reads an original file. It first runs the ordinary
verified export (the plan applied, every written byte checked) into a staging
folder inside ``dest``, converts those de-identified copies, then deletes them.
Everything written (file names, headers, sidecars, ``participants.tsv``) comes
from the de-identified copies or from the config's fixed labels.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
import pydicom

from gantry._deps import require
from gantry._pool import pool_context
from gantry._progress import tqdm
from gantry.errors import ConfigError, ExportError
from gantry.nifti._rules import BidsRule, load_bids_rules, pick_rule
from gantry.nifti._sidecar import sidecar
from gantry.nifti._volume import Unconvertible, read_volume
from gantry.nifti._write import write_volume
from gantry.plan._pseudonyms import safe_path_component
from gantry.store import Store

if TYPE_CHECKING:
    from gantry.export import ExportResult

CONVERSIONS_TABLE = "conversions"
Layout = Literal["bids", "flat"]
BIDS_VERSION = "1.9.0"
_ENTITY_ORDER = ("task", "acq", "ce", "rec", "dir", "run", "echo")
_SCHEMA = {
    "dest": pl.String,
    "layout": pl.String,
    "series_uid": pl.String,
    "PatientID": pl.String,
    "StudyInstanceUID": pl.String,
    "Modality": pl.String,
    "SeriesNumber": pl.Int64,
    "instances": pl.Int64,
    "file_ids": pl.List(pl.Int64),
    "status": pl.String,
    "reason": pl.String,
    "notes": pl.String,
    "output_path": pl.String,
    "datatype": pl.String,
    "suffix": pl.String,
    "shape": pl.String,
    "converted_at": pl.Datetime("us"),
}


@dataclass
class NiftiResult:
    """What one NIfTI export did.

    ``conversions`` has one row per selected series (the ``conversions`` table
    rows of this run): ``status`` is ``"converted"``, ``"not converted"`` (with
    ``reason``) or ``"unmatched"`` (BIDS layout: no datatype rule matched; listed,
    not written). Keys are de-identified (pseudonym, new UIDs) plus ``file_ids``.
    """

    dest: Path
    layout: str
    conversions: pl.DataFrame
    export: Any = None  # the staging ExportResult
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)

    @property
    def converted(self) -> int:
        """Series written."""
        return int((self.conversions["status"] == "converted").sum())

    @property
    def not_converted(self) -> pl.DataFrame:
        """Series that could not be converted, with the reason."""
        return self.conversions.filter(pl.col("status") == "not converted")

    @property
    def unmatched(self) -> pl.DataFrame:
        """Series no BIDS rule matched (not written in the BIDS layout)."""
        return self.conversions.filter(pl.col("status") == "unmatched")

    @property
    def ok(self) -> bool:
        """True when every selected series was converted."""
        return self.converted == self.conversions.height

    def as_dict(self) -> dict[str, Any]:
        return {
            "dest": str(self.dest),
            "layout": self.layout,
            "series": self.conversions.height,
            "converted": self.converted,
            "not_converted": self.not_converted.height,
            "unmatched": self.unmatched.height,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Series:
    """One selected series on its way through the conversion."""

    src: str  # the original series key (session side only, never written)
    file_ids: list[int]
    modality: str | None
    match: dict[str, str | None]
    paths: list[Path] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    series_uid: str | None = None
    patient: str | None = None
    study: str | None = None
    number: int | None = None
    status: str = "not converted"
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    staged: list[Path] = field(default_factory=list)
    kind: str | None = None
    shape: str | None = None
    rule: BidsRule | None = None
    output: str | None = None
    when: str = ""  # de-identified StudyDate + StudyTime, to number sessions
    sex: str = ""
    age: str = ""


def run_nifti_export(
    store: Store,
    dest: str | Path,
    *,
    stage: Callable[[Path], ExportResult],
    layout: str = "bids",
    rules: Any = None,
    dataset_name: str = "Gantry export",
    workers: int | None = None,
    progress: bool | None = None,
) -> NiftiResult:
    """Convert the selected series to NIfTI; see :meth:`gantry.Session.export_nifti`.

    ``stage(folder)`` must run the verified DICOM export into ``folder`` and
    return its :class:`~gantry.export.ExportResult` (the session does this with
    its own ``export``, so the plan, ``safe`` and ``query`` apply unchanged).
    """
    started = time.perf_counter()
    if layout not in ("bids", "flat"):
        raise ConfigError("layout", expected="one of 'bids', 'flat'", got=layout)
    rule_set = load_bids_rules(rules)
    require("nibabel", extra="nifti")
    dest_path = Path(dest).expanduser().absolute()
    if dest_path == store.layout.data_dir or store.layout.data_dir in dest_path.parents:
        raise ExportError("`dest` must be outside the session store")
    staging = dest_path / f".gantry-staging-{uuid.uuid4().hex[:12]}"
    result = NiftiResult(dest=dest_path, layout=layout, conversions=pl.DataFrame(schema=_SCHEMA))
    with store.run("export-nifti", {"dest": str(dest_path), "layout": layout}) as counts:
        try:
            result.export = stage(staging)
            series = _collect(store, staging, result.export)
            show = progress if progress is not None else sys.stderr.isatty()
            _convert_all(series, staging / ".nifti", rule_set, layout, workers, show)
            result.files = _place(series, dest_path, layout)
            if layout == "bids":
                _dataset_files(series, dest_path, dataset_name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        result.conversions = _table(series, dest_path, layout)
        if result.conversions.height:
            store.write_table(CONVERSIONS_TABLE, result.conversions, mode="append")
        result.seconds = time.perf_counter() - started
        counts.update(result.as_dict())
    return result


def _index_values(store: Store, ids: pl.DataFrame) -> pl.DataFrame:
    """Session-side series key and the fields rules match on, per file."""
    have = set(store.scan("instances").collect_schema().names())
    exprs: list[pl.Expr] = [
        pl.col("file_id").cast(pl.Int64),
        pl.col("SeriesInstanceUID").alias("_src"),
    ]
    for name in ("Modality", "SeriesDescription", "ProtocolName", "ImageType"):
        if name not in have:
            exprs.append(pl.lit(None, pl.String).alias(name))
            continue
        dtype = store.scan("instances").collect_schema()[name]
        col = pl.col(name)
        if isinstance(dtype, pl.List):
            col = col.cast(pl.List(pl.String)).list.join("\\")
        exprs.append(col.cast(pl.String).alias(name))
    return (
        store.scan("instances").join(ids.lazy(), on="file_id", how="semi").select(exprs).collect()
    )


def _collect(store: Store, staging: Path, exported: ExportResult) -> list[_Series]:
    """Group the selected instances into series; attach staged paths and export failures."""
    ok = pl.DataFrame(schema={"file_id": pl.Int64, "output_path": pl.String})
    if "exports" in store.table_names():
        ok = store.sql(
            "SELECT file_id, output_path FROM exports WHERE dest = ? AND status = 'ok'",
            [str(staging)],
        ).unique("file_id", keep="last")
    bad = pl.concat(
        [exported.excluded.select("file_id", "reason"), exported.failed.select("file_id", "reason")]
    )
    ids = pl.concat([ok.select("file_id"), bad.select("file_id")]).unique()
    if ids.height == 0:
        return []
    values = _index_values(store, ids)
    paths = dict(ok.iter_rows())
    reasons = dict(bad.iter_rows())
    # a second file of an instance that is exported (duplicates: first) is no loss
    sops = store.sql(
        "SELECT file_id, SOPInstanceUID FROM instances WHERE list_contains(?, file_id)",
        [ids["file_id"].to_list()],
    )
    sop = dict(sops.iter_rows())
    written = {sop.get(fid) for fid in paths} - {None}
    series: dict[str, _Series] = {}
    for row in values.sort("file_id").iter_rows(named=True):
        if int(row["file_id"]) in reasons and sop.get(int(row["file_id"])) in written:
            continue
        key = str(row["_src"])
        s = series.get(key)
        if s is None:
            match = {
                k: row[k] for k in ("Modality", "SeriesDescription", "ProtocolName", "ImageType")
            }
            s = series[key] = _Series(key, [], row["Modality"], match)
        s.file_ids.append(int(row["file_id"]))
        fid = int(row["file_id"])
        if fid in reasons:
            s.bad.append(str(reasons[fid]))
        elif fid in paths:
            s.paths.append(staging / paths[fid])
    return list(series.values())


@dataclass
class _Job:
    """What a worker needs to convert one series (plain, picklable data)."""

    index: int
    paths: list[Path]
    scratch: Path
    match: dict[str, str | None]
    rules: tuple[BidsRule, ...]
    layout: str
    bad: list[str]
    total: int


@dataclass
class _Outcome:
    index: int
    status: str = "not converted"
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    kind: str | None = None
    shape: str | None = None
    rule: int | None = None
    staged: list[Path] = field(default_factory=list)
    head: dict[str, str] = field(default_factory=dict)


_SERIES_PER_WORKER = 4
_HEAD = ("SeriesInstanceUID", "PatientID", "StudyInstanceUID", "SeriesNumber", "StudyDate",
         "StudyTime", "PatientSex", "PatientAge")  # fmt: skip


def _convert_all(
    series: list[_Series],
    scratch: Path,
    rules: tuple[BidsRule, ...],
    layout: str,
    workers: int | None,
    show: bool,
) -> None:
    """Convert every series; on a process pool when there are workers and enough series."""
    jobs = [
        _Job(n, s.paths, scratch / f"{n:06d}", s.match, rules, layout, s.bad, len(s.file_ids))
        for n, s in enumerate(series)
    ]
    n_workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    bar = tqdm(total=len(jobs), desc="converting", unit="series", disable=not show)
    try:
        # a pool costs its start-up (a process per worker importing numpy, pydicom,
        # nibabel): worth it only with several series per worker
        if n_workers == 1 or len(jobs) < _SERIES_PER_WORKER * n_workers:
            for job in jobs:
                _apply(series[job.index], convert_series(job), rules)
                bar.update()
        else:
            ctx = pool_context()  # workers never import __main__ (a script without the guard)
            with ProcessPoolExecutor(max_workers=min(n_workers, len(jobs)), mp_context=ctx) as ex:
                for got in ex.map(convert_series, jobs):
                    _apply(series[got.index], got, rules)
                    bar.update()
    finally:
        bar.close()


def _apply(s: _Series, got: _Outcome, rules: tuple[BidsRule, ...]) -> None:
    head = got.head
    s.series_uid = head.get("SeriesInstanceUID") or None
    s.patient = head.get("PatientID") or None
    s.study = head.get("StudyInstanceUID") or None
    number = head.get("SeriesNumber", "")
    s.number = int(float(number)) if number else None
    s.when = head.get("StudyDate", "") + head.get("StudyTime", "")
    s.sex, s.age = head.get("PatientSex", ""), head.get("PatientAge", "")
    s.status, s.reason, s.notes = got.status, got.reason, got.notes
    s.kind, s.shape, s.staged = got.kind, got.shape, got.staged
    s.rule = rules[got.rule] if got.rule is not None else None


def convert_series(job: _Job) -> _Outcome:
    """Convert one series from its de-identified copies (worker side; never raises)."""
    out = _Outcome(job.index)
    try:
        _convert(job, out)
    except Exception as exc:  # a codec or reader error: report it, the batch goes on
        out.status, out.reason = "not converted", f"{type(exc).__name__}: {exc}"
    return out


def _convert(job: _Job, out: _Outcome) -> None:
    if job.paths:
        head = pydicom.dcmread(job.paths[0], stop_before_pixels=True, force=True)
        out.head = {k: str(head.get(k, "") or "") for k in _HEAD}
    if job.bad:
        out.reason = (
            f"{len(job.bad)} of {job.total} instances were not exported clean: "
            + "; ".join(sorted(set(job.bad)))
        )
        return
    try:
        volume = read_volume(job.paths)
    except Unconvertible as exc:
        out.reason = str(exc)
        return
    out.kind = volume.kind
    out.shape = "x".join(str(n) for n in volume.data.shape)
    out.notes = volume.notes
    rule = None
    if job.layout == "bids":
        out.rule = pick_rule(job.rules, {**job.match, "kind": volume.kind})
        if out.rule is None:
            out.status = "unmatched"
            out.reason = (
                f"no BIDS rule matched (Modality {job.match.get('Modality')}, kind {volume.kind})"
            )
            return
        rule = job.rules[out.rule]
    assert volume.first is not None
    meta = sidecar(volume.first, slice_timing=volume.slice_timing, notes=volume.notes)
    if rule is not None and rule.datatype == "func":
        meta["TaskName"] = rule.entities["task"]
    if rule is not None and rule.datatype == "dwi" and volume.bvals is None:
        out.reason = "a diffusion rule matched but the series has no b-values"
        return
    out.staged = write_volume(volume, job.scratch, meta)
    out.status = "converted"


def _sessions(series: list[_Series]) -> dict[tuple[str, str], int]:
    """``ses-<n>``: a patient's de-identified studies numbered by their (shifted) date."""
    dates: dict[tuple[str, str], str] = {}
    for s in series:
        if s.patient and s.study:
            dates.setdefault((s.patient, s.study), s.when)
    numbers: dict[tuple[str, str], int] = {}
    by_patient: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for (patient, study), when in dates.items():
        by_patient[patient].append((when, study))
    for patient, studies in by_patient.items():
        for n, (_when, study) in enumerate(sorted(studies), start=1):
            numbers[(patient, study)] = n
    return numbers


def bids_label(pseudonym: str) -> str:
    """A BIDS label (letters and digits) from a pseudonym.

    Examples
    --------
    >>> bids_label("ANON_000012")
    'ANON000012'
    """
    return re.sub(r"[^A-Za-z0-9]", "", pseudonym) or "unknown"


def _place(series: list[_Series], dest: Path, layout: str) -> list[Path]:
    """Choose final names (runs for repeats) and move the converted files there."""
    done = [s for s in series if s.status == "converted"]
    sessions = _sessions(done)
    labels: dict[str, str] = {}
    for s in done:
        label = bids_label(s.patient or "")
        if labels.setdefault(label, s.patient or "") != (s.patient or ""):
            raise ExportError(f"two pseudonyms give the same BIDS label {label!r}")
    stems: dict[str, list[_Series]] = defaultdict(list)
    for s in sorted(
        done, key=lambda s: (s.number if s.number is not None else 1 << 30, s.series_uid or "")
    ):
        ses = sessions.get((s.patient or "", s.study or ""), 1)
        if layout == "bids":
            assert s.rule is not None
            sub = f"sub-{bids_label(s.patient or '')}"
            folder = f"{sub}/ses-{ses}/{s.rule.datatype}"
            stems[f"{folder}/{sub}_ses-{ses}|{s.rule.suffix}|{_entities(s.rule.entities)}"].append(
                s
            )
        else:
            pid = safe_path_component(s.patient or "UNKNOWN")
            number = f"{s.number:03d}" if s.number is not None else "000"
            stems[f"{pid}/ses-{ses}/{number}_{safe_path_component(s.modality or 'OT')}||"].append(s)
    written: list[Path] = []
    for key, members in stems.items():
        base, suffix, entities = key.split("|")
        for run, s in enumerate(members, start=1):
            if layout == "bids":
                ents = dict(s.rule.entities) if s.rule else {}
                if len(members) > 1:
                    ents["run"] = str(run)
                name = f"{base}{_entities(ents)}_{suffix}"
            else:
                name = base if len(members) == 1 else f"{base}_{run}"
            s.output = name + ".nii.gz"
            for staged in s.staged:
                target = dest / (name + "." + staged.name.split(".", 1)[1])
                target.parent.mkdir(parents=True, exist_ok=True)
                staged.replace(target)
                written.append(target)
    return written


def _entities(ents: dict[str, str] | Any) -> str:
    return "".join(f"_{k}-{ents[k]}" for k in _ENTITY_ORDER if k in ents)


def _dataset_files(series: list[_Series], dest: Path, name: str) -> None:
    """``dataset_description.json``, ``README``, ``participants.tsv``/``.json`` (de-identified)."""
    from gantry._version import __version__

    description = {
        "Name": name,
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "raw",
        "GeneratedBy": [{"Name": "gantry", "Version": __version__}],
    }
    (dest / "dataset_description.json").write_text(json.dumps(description, indent=2) + "\n")
    readme = dest / "README"
    if not readme.exists():
        readme.write_text(
            "De-identified imaging data converted from DICOM by Gantry.\n"
            "Subjects are pseudonyms; dates and identifiers follow the de-identification plan.\n"
        )
    rows: dict[str, tuple[str, str]] = {}
    for s in series:
        if s.status != "converted":
            continue
        pid = f"sub-{bids_label(s.patient or '')}"
        sex, age = s.sex.upper(), s.age
        years = (
            str(int(age[:3])) if len(age) == 4 and age[:3].isdigit() and age[3] == "Y" else "n/a"
        )
        rows.setdefault(pid, (sex if sex in ("M", "F", "O") else "n/a", years))
    table = dest / "participants.tsv"
    if table.exists():  # keep subjects of earlier runs into the same folder
        for line in table.read_text().splitlines()[1:]:
            cells = line.split("\t")
            if len(cells) == 3 and cells[0] not in rows:
                rows[cells[0]] = (cells[1], cells[2])
    lines = ["participant_id\tsex\tage"] + [f"{k}\t{v[0]}\t{v[1]}" for k, v in sorted(rows.items())]
    table.write_text("\n".join(lines) + "\n")
    (dest / "participants.json").write_text(
        json.dumps(
            {
                "sex": {
                    "Description": "sex as kept by the de-identification plan",
                    "Levels": {"M": "male", "F": "female", "O": "other"},
                },
                "age": {
                    "Description": "age in years as kept by the de-identification plan",
                    "Units": "year",
                },
            },  # fmt: skip
            indent=2,
        )
        + "\n"
    )


def _table(series: list[_Series], dest: Path, layout: str) -> pl.DataFrame:
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        {
            "dest": str(dest),
            "layout": layout,
            "series_uid": s.series_uid,
            "PatientID": s.patient,
            "StudyInstanceUID": s.study,
            "Modality": s.modality,
            "SeriesNumber": s.number,
            "instances": len(s.file_ids),
            "file_ids": s.file_ids,
            "status": s.status,
            "reason": s.reason or None,
            "notes": "; ".join(s.notes) or None,
            "output_path": s.output,
            "datatype": s.rule.datatype if s.rule else None,
            "suffix": s.rule.suffix if s.rule else None,
            "shape": s.shape,
            "converted_at": now,
        }
        for s in series
    ]
    return pl.DataFrame(rows, schema=_SCHEMA)
