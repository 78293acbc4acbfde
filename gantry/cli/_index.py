"""Verbs over the index: ``demo``, ``ingest``, ``sql``, ``info``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gantry.cli._app import (
    PathOrURL,
    cli,
    db_option,
    detail,
    print_frame,
    run_guarded,
    say,
    scheduler_option,
    status,
    summary,
    table_options,
    workers_option,
)

if TYPE_CHECKING:
    from gantry.audit import OcrStatus

_DEMO_CONFIG = """\
# Gantry config v2 for the demo (see docs/config.md for every key).
version: 2
privacy_profile: basic
options: [retain-longitudinal-modified-dates]   # shift dates per patient, keep intervals
date_jitter: {min_days: -365, max_days: -1}
machines:
  # the synthetic ultrasound burns a banner into the top rows of every frame
  - name: Sonoria S8 banner
    match: {manufacturer: Sonoria, model: Sonoria S8}
    redaction_zones: [[0, 8, 0, 64]]
    fill: 0
# secondary captures and screen captures have no zone: OCR reads them (gantry scan);
# those with no text are cleared, text found is redacted (burned_in.ocr_redact)
"""


@cli.command()
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path), default="gantry-demo")
@click.option("--patients", default=4, show_default=True, help="Synthetic patients to make.")
@click.option("--seed", default=0, show_default=True, help="Random seed of the sample.")
@click.option("--no-run", is_flag=True, help="Only write the sample; do not run the pipeline.")
def demo(dest: Path, patients: int, seed: int, no_run: bool) -> None:
    """Make a synthetic sample in DEST and run the whole pipeline on it.

    Writes DEST/dicom (patients with PHI in headers, nested sequences, private
    blocks, compressed and multi-frame images, screen captures with burned-in
    text, plus clutter), then ingests it into DEST/project.db, audits it, OCRs
    the images with a burned-in text risk and no zone (clearing those without
    text), plans the anonymization, exports clean copies to DEST/export and the
    re-identification maps to DEST/maps.
    """
    from gantry.testing import make_clutter, make_corpus

    corpus = make_corpus(dest / "dicom", patients=patients, seed=seed)
    captures = _write_captures(dest / "dicom" / "captures", corpus.patients[0], seed)
    clutter = make_clutter(dest / "dicom" / "clutter")
    say(
        f"wrote {len(corpus.paths)} DICOM files for {patients} patients, {len(captures)} "
        f"screen captures with the first patient's name burned in, and "
        f"{len(clutter)} clutter files under {dest / 'dicom'}"
    )
    if no_run:
        summary(f"sample in {dest / 'dicom'}", sample=str(dest / "dicom"))
        return

    config = dest / "gantry.yaml"
    config.write_text(_DEMO_CONFIG)
    say(f"wrote the demo config {config} (basic profile, shifted dates, one redaction zone)")

    def body() -> int:
        from gantry.cli._deid import instances_by_reason
        from gantry.report import write_manifest_html
        from gantry.session import Session

        with Session(dest / "project.db") as s:
            r = s.ingest(dest / "dicom", progress=False)
            say(
                f"\n== ingest: {r.indexed} instances, {r.elements} elements, "
                f"{r.skipped} files skipped, {r.seconds:.2f} s"
            )
            say(str(s.info()))
            report = s.audit(config)
            scanned = _scan_burned_in(s, report, config)
            if scanned is not None:
                report = s.audit(config)  # the scan cleared or resolved the burned-in risks
            s.save_analysis(report)
            say(f"\n== audit: {len(report)} findings")
            detail("findings by rule:", report.summary(by="rule"), "findings_by_rule")
            counts = s.anonymize(config)
            detail("\n== plan (actions by rule, top 12)", counts.head(12), "plan_by_rule")
            e = s.export(dest / "export", config=config, progress=False)
            say(
                f"\n== export: {e.exported} clean files in {dest / 'export'} "
                f"({e.files_per_second:.0f} files/s, verified), excluded {e.excluded.height} "
                f"(unresolved findings), failed {e.failed.height}"
            )
            if e.excluded.height:
                detail(
                    "excluded, by reason and device:",
                    instances_by_reason(s, e.excluded),
                    "excluded_instances",
                )
            maps = s.export_maps(dest / "maps")
            say(
                f"maps (keep them apart from the export): {', '.join(str(p) for p in maps.values())}"
            )
            compliance = s.compliance_report(dest / "export", profile=config, out=dest / "report")
            manifest = write_manifest_html(s, dest / "export")
        pages = {"compliance": compliance.outputs["html"], "manifest": manifest}
        summary(
            f"\nreports: {pages['compliance']} ({compliance.verdict}) and {pages['manifest']}\n"
            f'Try: gantry sql "SELECT action, count(*) FROM plan GROUP BY 1" '
            f"--db {dest / 'project.db'}",
            exported=e.exported,
            excluded=e.excluded.height,
            failed=e.failed.height,
            ocr=scanned.as_dict() if scanned is not None else None,
            verdict=compliance.verdict,
            reports={k: str(v) for k, v in pages.items()},
            db=str(dest / "project.db"),
        )
        return 0 if e.ok else 1

    run_guarded(body)


def _write_captures(folder: Path, patient: Any, seed: int) -> list[Path]:
    """Two screen captures (RGB secondary captures) with the patient's name, ID and birth
    date drawn into the pixels; none when Pillow (the ``ocr`` extra) is missing, since
    drawing the text needs it and a bare install still runs the rest of the demo."""
    from importlib.util import find_spec

    from gantry.testing._text import make_text_instance

    if find_spec("PIL") is None:
        say("no screen captures: drawing their text needs Pillow (pip install 'gantry[ocr]')")
        return []

    identity = {
        "PatientName": patient.name,
        "PatientID": patient.patient_id,
        "PatientBirthDate": patient.birth_date,
    }
    paths = []
    for i in range(2):
        path = folder / f"CAPTURE{i + 1}.dcm"
        make_text_instance(
            path, kind="screen", rows=128, columns=256, size=14, seed=seed * 10 + i,
            Manufacturer="Viewstation", **identity,
        )  # fmt: skip
        paths.append(path)
    return paths


def _scan_burned_in(s: Any, report: Any, config: Path) -> OcrStatus | None:
    """OCR every frame of the images whose burned-in text risk is unresolved; say what it
    found.  None when there was nothing to scan or the OCR extra is missing."""
    import polars as pl

    from gantry.audit import ocr_status
    from gantry.errors import MissingDependencyError

    risky = report.unresolved().filter(pl.col("rule") == "burned-in")["file_id"].unique()
    if risky.len() == 0:
        return None
    query = f"file_id IN ({', '.join(str(int(f)) for f in risky.sort())})"
    try:  # in this process: a handful of images does not pay for a worker pool
        r = s.scan_pixels(query=query, safe=True, workers=1, progress=False)
    except MissingDependencyError as exc:
        say(f"\n== scan: skipped, {exc}; those images stay excluded")
        return None
    status = ocr_status(s.store, config)
    say(
        f"\n== scan: OCR read every frame of the {r.selected} images with a burned-in text "
        f"risk and no zone ({r.frames} frames, {r.seconds:.1f} s): {status.cleared} cleared "
        f"(no text), {status.with_text} with text to redact ({r.regions} regions, "
        f"{r.phi_regions} identifying), {r.failed} failed"
    )
    return status


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=PathOrURL(exists=True))
@db_option
@workers_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar; print only the summary line.")
@scheduler_option
@click.option(
    "--limit",
    "limit_items",
    metavar="NAME=VALUE",
    multiple=True,
    help="A per-file limit, e.g. max_depth=32 (max_depth, max_element_bytes, "
    "max_inflated_bytes, max_frames); files over it are skipped as over_limit.",
)
@click.option(
    "--data",
    metavar="URL",
    default=None,
    help="Keep the session's Parquet tables at this object-storage URL (an empty "
    "prefix, e.g. s3://bucket/tables); given once, when the session is made.",
)
def ingest(
    paths: tuple[Path | str, ...],
    db: Path,
    workers: int | None,
    quiet: bool,
    scheduler: str | None,
    limit_items: tuple[str, ...] = (),
    data: str | None = None,
) -> None:
    """Index every DICOM header under PATHS into the session (resumable).

    PATHS may be object storage URLs (s3://bucket/prefix, gs://, az://), read with
    the SDK's environment credentials (docs/storage.md).
    """
    from gantry.errors import ConfigError
    from gantry.session import Session

    def body() -> None:
        limits: dict[str, int] = {}
        for item in limit_items:
            name, _, value = item.partition("=")
            if not value.strip().isdigit():
                raise ConfigError(f"--limit {name}", expected="NAME=<positive integer>", got=item)
            limits[name.strip()] = int(value)
        with Session(db, data=data) as s:
            r = s.ingest(
                list(paths),
                workers=workers,
                progress=None if not quiet else False,
                cluster=scheduler,
                limits=limits,
            )
            summary(
                f"indexed {r.indexed} instances ({r.elements} elements), skipped {r.skipped}, "
                f"already indexed {r.already_indexed}, in {r.seconds:.2f} s "
                f"({r.files_per_second:.0f} files/s)",
                indexed=r.indexed,
                elements=r.elements,
                skipped=r.skipped,
                already_indexed=r.already_indexed,
                seconds=round(r.seconds, 3),
            )
            say(str(s.info()))

    run_guarded(body)


@cli.command()
@click.argument("query")
@db_option
@table_options
def sql(query: str, db: Path, fmt: str, out: Path | None, wide: bool) -> None:
    """Run a SQL QUERY over the session's tables and views.

    Tables: instances, elements, skipped, runs and what the stages write (findings,
    plan, exports, ...); views patients, studies, series, duplicates.
    """
    from gantry.session import Session

    def body() -> None:
        with Session(db) as s:
            print_frame(s.sql(query), fmt, out)

    run_guarded(body)


@cli.command()
@db_option
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the counts to this file (.json, or .csv/.parquet/.html for the totals).",
)
def info(db: Path, out: Path | None) -> None:
    """Counts by patient/study/series/modality/manufacturer; skipped files by reason."""
    from gantry.session import Session

    def body() -> None:
        import polars as pl

        with Session(db) as s:
            i = s.info()
        from gantry import __version__

        data = {"gantry_version": __version__, **i.to_dict()}
        if out is not None:
            if out.suffix.lower() == ".json":
                out.write_text(json.dumps(data, indent=1, default=str))
                status(f"wrote {out}")
            else:
                totals = pl.DataFrame({"count": list(i.totals), "n": list(i.totals.values())})
                print_frame(totals, None, out)
        summary(str(i), **data)

    run_guarded(body)
