"""Verify an export folder against a privacy profile by reading the files written.

:func:`compliance_report` maps each file of the folder to its source instance
through the session's ``exports`` table (and, for a stray file, through its
SOP Instance UID), reads every file back, and runs the checks of
:data:`gantry.report.CHECKS`.  The result says, per rule and per file, pass or
fail, and names each problem by keyword, tag and file, never by value.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import polars as pl

from gantry._version import __version__
from gantry.errors import ExportError
from gantry.export._leaks import Token
from gantry.profiles import Profile, load_profile
from gantry.report._checks import (
    CHECKS,
    PROBLEM_SCHEMA,
    check_burned_in,
    check_markers,
    check_private,
    check_redaction,
    check_removed,
    check_replaced,
    check_uids,
    effective_actions,
    original_uids,
    raw_private_tokens,
    tag_actions,
)
from gantry.store import Store
from gantry.store._layout import EXPORT_MARKER

__all__ = ["REPORT_FILES", "ComplianceReport", "compliance_report"]

REPORT_FILES: Final = frozenset(
    {
        "manifest.csv",
        "manifest.json",
        "manifest.html",
        "compliance.html",
        "compliance.json",
        "compliance.csv",
    }
)
"""Files at the top of an export folder that are reports, not exported data."""
_ELEMENT_PATH: Final = re.compile(r"^[0-9A-F]{8}")

_EXCLUDED_SCHEMA: Final = pl.Schema(
    {
        "file_id": pl.Int64(),
        "Modality": pl.String(),
        "device": pl.String(),
        "status": pl.String(),
        "reason": pl.String(),
    }
)


@dataclass
class ComplianceReport:
    """The verdict on one export folder, with the evidence.

    Attributes
    ----------
    export_dir : Path
        The folder verified.
    compliant : bool
        True only when at least one file was checked and no check failed.
    profile, options, edition : str, list of str, str
        The profile the files were checked against and the standard's edition.
    settings : dict
        The export's recorded options (query, safe, compression) and the config source.
    summary : dict of str to int
        Files checked / passed / failed / missing, problems, leaks, excluded, failed exports.
    rules : polars.DataFrame
        One row per check: ``rule, title, description, files_checked, files_failed,
        problems, status``.
    files : polars.DataFrame
        One row per file: ``output_path, status, transfer_syntax, n_problems`` and one
        ``pass``/``fail``/``n/a`` column per check.
    problems : polars.DataFrame
        One row per problem: ``output_path, rule, tag, keyword, path, detail`` (no values).
    excluded : polars.DataFrame
        Instances not exported: ``file_id`` (session key), ``Modality``, ``device``
        (manufacturer and model), ``status`` (``excluded`` or ``failed``), ``reason``.
    codecs : polars.DataFrame
        ``transfer_syntax, name, files``.
    outputs : dict of str to Path or str (URL)
        The report files written (``html``, ``json``, ``csv``).
    """

    export_dir: Path
    compliant: bool
    profile: str
    options: list[str]
    edition: str
    settings: dict[str, Any]
    summary: dict[str, int]
    rules: pl.DataFrame
    files: pl.DataFrame
    problems: pl.DataFrame
    excluded: pl.DataFrame
    codecs: pl.DataFrame
    generated_at: str = ""
    outputs: dict[str, Path | str] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """``"COMPLIANT"`` or ``"NOT COMPLIANT"``."""
        return "COMPLIANT" if self.compliant else "NOT COMPLIANT"

    @property
    def leaks(self) -> pl.DataFrame:
        """The problems that mean identifying information may be in the export."""
        leak_rules = [c.id for c in CHECKS.values() if c.leak]
        return self.problems.filter(pl.col("rule").is_in(leak_rules))

    def __str__(self) -> str:
        s = self.summary
        lines = [
            f"{self.verdict}: {self.export_dir}",
            f"  profile {self.profile}"
            + (f" + {', '.join(self.options)}" if self.options else "")
            + f" ({self.edition})",
            f"  files checked {s['files_checked']}, passed {s['files_passed']}, "
            f"failed {s['files_failed']}, missing {s['files_missing']}",
            f"  problems {s['problems']} (possible leaks {s['leaks']}); "
            f"instances excluded {s['excluded']}, failed at export {s['export_failed']}",
        ]
        for rule, n in (
            self.rules.filter(pl.col("status") == "fail").select("rule", "files_failed").iter_rows()
        ):
            lines.append(f"  FAIL {rule}: {n} file(s)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Everything in the report as JSON-ready data (what ``compliance.json`` holds)."""
        return {
            "verdict": self.verdict,
            "compliant": self.compliant,
            "export_dir": str(self.export_dir),
            "generated_at": self.generated_at,
            "gantry_version": __version__,
            "profile": {"name": self.profile, "options": self.options, "edition": self.edition},
            "settings": self.settings,
            "summary": self.summary,
            "checks": self.rules.to_dicts(),
            "files": self.files.to_dicts(),
            "problems": self.problems.to_dicts(),
            "excluded": self.excluded.to_dicts(),
            "codecs": self.codecs.to_dicts(),
        }

    def write(
        self,
        out: str | os.PathLike[str],
        storage_options: Mapping[str, Any] | None = None,
    ) -> dict[str, Path | str]:
        """Write ``compliance.html``, ``compliance.json`` and ``compliance.csv`` into ``out``.

        ``out`` may be a URL (``s3://bucket/reports``): the three files are written
        locally, then each is published whole (``storage_options`` go to fsspec).
        """
        from gantry.report._render import render_compliance
        from gantry.storage._fs import is_url
        from gantry.storage._outputs import publish_output

        if is_url(out):
            url = os.fspath(out).rstrip("/")
            publish_output(url, self.write, storage_options)
            self.outputs = {k: f"{url}/compliance.{k}" for k in ("html", "json", "csv")}
            return self.outputs

        folder = Path(out).expanduser().absolute()
        folder.mkdir(parents=True, exist_ok=True)
        paths = {k: folder / f"compliance.{k}" for k in ("html", "json", "csv")}
        texts = {
            "html": render_compliance(self),
            "json": json.dumps(self.to_dict(), indent=1, default=str),
            "csv": self.files.write_csv(),
        }
        for key, path in paths.items():
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(texts[key], encoding="utf-8")
            os.replace(tmp, path)
        self.outputs = dict(paths)
        return self.outputs


# -- inputs -----------------------------------------------------------------------------------


def _profile_and_config(config: Any) -> tuple[Profile, Any]:
    if isinstance(config, Profile):
        return config, None
    from gantry.config import Config, load_config

    cfg = config if isinstance(config, Config) else load_config(config)
    return load_profile(cfg.privacy_profile, cfg.options), cfg


def _export_run(store: Store, dest: Path) -> dict[str, Any]:
    rows = store.sql(
        "SELECT details, counts FROM runs WHERE kind = 'export' "
        "AND json_extract_string(details, '$.dest') = ? ORDER BY started_at DESC LIMIT 1",
        [str(dest)],
    )
    if rows.height == 0:
        return {}
    details = json.loads(rows["details"][0] or "{}")
    return {k: details.get(k) for k in ("query", "safe", "compression")}


def _records(store: Store, dest: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``ok`` rows (last per output path) and ``failed`` rows (never later exported)."""
    empty = pl.DataFrame(
        schema={
            "file_id": pl.Int64,
            "output_path": pl.String,
            "sha256": pl.String,
            "status": pl.String,
            "reason": pl.String,
            "SOPInstanceUID": pl.String,
        }
    )
    if "exports" not in store.table_names():
        return empty, empty
    rows = store.sql(
        "SELECT file_id, output_path, sha256, status, reason, SOPInstanceUID FROM exports "
        "WHERE dest = ? ORDER BY exported_at",
        [str(dest)],
    )
    ok = (  # the latest file of each instance (an earlier one under another name is gone)
        rows.filter(pl.col("status") == "ok")
        .unique("file_id", keep="last", maintain_order=True)
        .unique("output_path", keep="last", maintain_order=True)
    )
    failed = (
        rows.unique("file_id", keep="last", maintain_order=True)
        .filter(pl.col("status") != "ok")
        .join(ok.select("file_id"), on="file_id", how="anti")
    )
    return ok, failed


def _excluded(
    store: Store, dest: Path, export: Any, failed: pl.DataFrame, ok: pl.DataFrame, cfg: Any
) -> pl.DataFrame:
    """Instances not exported, from the export result or recomputed from the session."""
    parts: list[pl.DataFrame] = []
    if export is not None:
        parts.append(export.excluded.with_columns(pl.lit("excluded").alias("status")))
        parts.append(export.failed.with_columns(pl.lit("failed").alias("status")))
    else:
        parts.append(failed.select("file_id", pl.lit("failed").alias("status"), "reason"))
        run = _export_run(store, dest)
        where = f"WHERE {run['query']}" if run.get("query") else ""
        selected = store.sql(f"SELECT file_id FROM instances {where}")
        reasons: list[pl.DataFrame] = []
        from gantry.model import excluded_file_ids

        edited = sorted(excluded_file_ids(store))
        if edited:
            reasons.append(
                pl.DataFrame(
                    {"file_id": edited, "reason": ["excluded by an edit"] * len(edited)},
                    schema={"file_id": pl.Int64, "reason": pl.String},
                )
            )
        if run.get("safe"):
            from gantry.audit import unresolved

            un = unresolved(store, cfg)
            reasons.append(
                un.group_by("file_id")
                .agg(pl.col("reason").unique().sort().str.join("; "))
                .select(pl.col("file_id").cast(pl.Int64), "reason")
            )
        if reasons:
            parts.append(
                pl.concat(reasons)
                .group_by("file_id")
                .agg(pl.col("reason").str.join("; "))
                .join(selected, on="file_id", how="semi")
                .join(ok.select("file_id"), on="file_id", how="anti")
                .with_columns(pl.lit("excluded").alias("status"))
            )
    frame = pl.concat(
        [p.select(pl.col("file_id").cast(pl.Int64), "status", "reason") for p in parts]
    )
    have = set(store.scan("instances").collect_schema().names()) if frame.height else set()
    parts_of_device = [c for c in ("Manufacturer", "ManufacturerModelName") if c in have]
    device = f"concat_ws(' ', {', '.join(parts_of_device)})" if parts_of_device else "NULL"
    modality = (
        store.sql(
            f"SELECT file_id, {'Modality' if 'Modality' in have else 'NULL'} AS Modality, "
            f"nullif({device}, '') AS device FROM instances"
        )
        if frame.height
        else None
    )
    if modality is None:
        return pl.DataFrame(schema=_EXCLUDED_SCHEMA)
    return (
        frame.join(
            modality.cast({"Modality": pl.String, "device": pl.String}), on="file_id", how="left"
        )
        .select(list(_EXCLUDED_SCHEMA))
        .cast(_EXCLUDED_SCHEMA)
        .sort("status", "Modality", "file_id", nulls_last=True)
    )


def _disk_files(dest: Path) -> list[Path]:
    out = []
    for p in dest.rglob("*"):
        if not p.is_file():
            continue
        rel = p.relative_to(dest).as_posix()
        if rel in REPORT_FILES or rel.startswith((".manifest.", ".compliance.", EXPORT_MARKER)):
            continue
        out.append(p)
    return sorted(out)


# -- the report -------------------------------------------------------------------------------


def compliance_report(
    store: Store,
    export: Any,
    *,
    config: Any = None,
    out: str | os.PathLike[str] | None = None,
) -> ComplianceReport:
    """Verify an export folder file by file against the profile; see :meth:`Session.compliance_report`."""
    from gantry.ingest._batch import read_batch

    started = datetime.now(UTC)
    result = None if isinstance(export, str | os.PathLike) else export
    dest = Path(result.dest if result is not None else export).expanduser().absolute()
    if not dest.is_dir():
        raise ExportError(f"`export_dir` must be an existing folder, got {str(dest)!r}")
    profile, cfg = _profile_and_config(config)
    ok, failed = _records(store, dest)
    disk = _disk_files(dest)
    rel_of = {str(p): p.relative_to(dest).as_posix() for p in disk}

    # read every file back with the ingest reader: same element paths and texts as the index
    batch = read_batch(disk)
    out_inst = pl.from_arrow(batch.instances)
    out_el = pl.from_arrow(batch.elements)
    skipped = pl.from_arrow(batch.skipped)
    assert isinstance(out_inst, pl.DataFrame) and isinstance(out_el, pl.DataFrame)
    assert isinstance(skipped, pl.DataFrame)
    inst_cols = set(out_inst.columns)
    out_files = out_inst.select(
        "file_id",
        pl.col("file_path")
        .replace_strict(rel_of, default=None, return_dtype=pl.String)
        .alias("output_path"),
        "transfer_syntax",
        "pixel_offset",
        "pixel_length",
        (pl.col("SOPInstanceUID") if "SOPInstanceUID" in inst_cols else pl.lit(None, pl.String))
        .cast(pl.String)
        .alias("_sop"),
    )

    # map each file to its source instance: recorded path, else its SOP Instance UID
    by_path = ok.select("output_path", pl.col("file_id").alias("_by_path"), "sha256")
    by_new_sop = ok.select(
        pl.col("SOPInstanceUID").alias("_sop"), pl.col("file_id").alias("_by_new")
    )
    orig_sop = store.sql(
        "SELECT SOPInstanceUID AS _sop, any_value(file_id) AS _by_orig FROM instances "
        "WHERE SOPInstanceUID IS NOT NULL GROUP BY 1"
    ).cast({"_sop": pl.String})
    out_files = (
        out_files.join(by_path, on="output_path", how="left")
        .join(by_new_sop.unique("_sop"), on="_sop", how="left")
        .join(orig_sop, on="_sop", how="left")
        .with_columns(
            pl.coalesce("_by_path", "_by_new", "_by_orig").alias("source_id"),
            pl.when(pl.col("_by_path").is_not_null())
            .then(pl.lit("path"))
            .when(pl.col("_by_new").is_not_null())
            .then(pl.lit("new SOP Instance UID"))
            .when(pl.col("_by_orig").is_not_null())
            .then(pl.lit("original SOP Instance UID"))
            .alias("mapped_by"),
        )
    )
    out_el = out_el.join(
        out_files.select("file_id", "output_path", "source_id"), on="file_id", how="left"
    )
    source_ids = out_files["source_id"].drop_nulls().unique()

    # the originals of those instances, and the profile's action for every tag seen
    source = (
        store.scan("elements")
        .filter(pl.col("file_id").is_in(source_ids.implode()))
        .select("file_id", "path", "tag", "keyword", "vr", "private_creator", "value")
        .collect()
    )
    actions = tag_actions(profile, pl.concat([source["tag"], out_el["tag"]]))
    option_names = {str(getattr(o, "value", o)) for o in profile.options}
    problems: list[pl.DataFrame] = [
        check_removed(out_el, actions, profile),
        check_replaced(
            out_el, source, actions, structured="clean-structured-content" in option_names
        ),
        check_uids(out_el, original_uids(store, profile)),
        check_private(out_el, cfg, profile),
    ]
    redact_plan = _redactions(store, source_ids)
    problems.append(
        check_markers(
            out_el,
            out_files.select("output_path", "source_id"),
            profile,
            set(redact_plan),
        )
    )
    problems.append(
        check_burned_in(
            out_inst,
            out_files.select("file_id", "output_path", "source_id"),
            set(redact_plan) | _ocr_cleared(store, cfg),
            cfg,
        )
    )
    unmapped = out_files["source_id"].null_count() > 0 or skipped.height > 0
    rules = _verification_rules(store, source, source_ids, actions, cfg, profile, unmapped=unmapped)
    problems.append(
        _file_checks(
            dest,
            out_files,
            rules,
            redact_plan,
            skipped,
            rel_of,
            ok["output_path"].to_list(),
        )
    )
    problems.append(_unplanned(store, out_files))
    # recorded files that are gone
    missing = ok.join(
        pl.DataFrame({"output_path": list(rel_of.values())}, schema={"output_path": pl.String}),
        on="output_path",
        how="anti",
    )
    problems.append(
        missing.select(
            "output_path",
            pl.lit("provenance").alias("rule"),
            pl.lit(None, pl.String).alias("tag"),
            pl.lit(None, pl.String).alias("keyword"),
            pl.lit(None, pl.String).alias("path"),
            pl.lit("recorded as exported but missing from the folder").alias("detail"),
        )
    )
    all_problems = (
        pl.concat([p.cast(PROBLEM_SCHEMA) for p in problems])
        .unique(maintain_order=True)
        .sort("output_path", "rule", "path", nulls_last=True)
    )
    excluded = _excluded(store, dest, result, failed, ok, cfg)
    redacted_files = set(
        out_files.filter(pl.col("source_id").is_in(list(redact_plan)))["output_path"].to_list()
    )
    report = _assemble(
        dest,
        profile,
        cfg,
        store,
        all_problems,
        out_files,
        redacted_files,
        rel_of,
        missing,
        excluded,
    )
    report.generated_at = started.isoformat(timespec="seconds")
    if out is not None:
        report.write(out)
    return report


def _unplanned(store: Store, out_files: pl.DataFrame) -> pl.DataFrame:
    """Files whose source instance has no rows in the session's plan (written unplanned)."""
    planned = (
        store.scan("plan").select("file_id").unique().collect()["file_id"]
        if "plan" in store.table_names()
        else pl.Series("file_id", [], dtype=pl.Int64)
    )
    return out_files.filter(
        pl.col("source_id").is_not_null() & ~pl.col("source_id").is_in(planned.implode())
    ).select(
        "output_path",
        pl.lit("provenance").alias("rule"),
        pl.lit(None, pl.String).alias("tag"),
        pl.lit(None, pl.String).alias("keyword"),
        pl.lit(None, pl.String).alias("path"),
        pl.lit("its instance has no rows in the session's plan (written unplanned)").alias(
            "detail"
        ),
    )


def _raw_private(
    store: Store, source: pl.DataFrame, actions: pl.DataFrame, cfg: Any, profile: Profile
) -> pl.DataFrame:
    """Tokens of removed private elements whose text the index does not hold (``UN``)."""
    unread = effective_actions(
        source.filter((pl.col("vr") == "UN") & pl.col("value").is_null()), actions, cfg, profile
    ).filter(pl.col("eff") == "X")
    if unread.height == 0:
        return raw_private_tokens({})
    paths = store.sql(
        "SELECT file_id, file_path FROM instances WHERE list_contains(?, file_id)",
        [unread["file_id"].unique().to_list()],
    )
    tags = unread.group_by("file_id").agg(pl.col("tag").unique())
    wanted = {fid: (path, set(t)) for fid, path, t in paths.join(tags, on="file_id").iter_rows()}
    return raw_private_tokens(wanted)


def _ocr_cleared(store: Store, cfg: Any) -> set[int]:
    """Source instances whose latest OCR scan read every frame and found no text to redact
    under the config's policy (their burned-in risk is cleared, as in the audit)."""
    from gantry.audit._ocr import ocr_coverage
    from gantry.audit._rules import AuditContext

    coverage = ocr_coverage(store, AuditContext.from_config(cfg).ocr_redact)
    if coverage is None:
        return set()
    return set(coverage.filter(pl.col("_ocr") == "clear").collect()["file_id"].to_list())


def _redactions(store: Store, source_ids: pl.Series) -> dict[int, str]:
    if "plan" not in store.table_names():
        return {}
    rows = (
        store.scan("plan")
        .filter((pl.col("action") == "REDACT") & pl.col("file_id").is_in(source_ids.implode()))
        .select("file_id", "new_value")
        .collect()
    )
    # an entry that only burns overlays in (``overlays: burn``) redacts nothing
    zones = rows["new_value"].str.json_path_match("$.zones").fill_null("[]")
    return dict(rows.filter(zones != "[]").iter_rows())


@dataclass
class _Rules:
    """What export verification searched each source instance's output for, and where."""

    tokens: dict[int, list[Token]]
    paths: dict[int, list[str]]
    anywhere: list[Token]
    """Every instance's identity values: what a file with no known source is searched for."""


def _verification_rules(
    store: Store,
    source: pl.DataFrame,
    source_ids: pl.Series,
    actions: pl.DataFrame,
    cfg: Any,
    profile: Profile,
    *,
    unmapped: bool = False,
) -> _Rules:
    """The rules of export verification (:mod:`gantry.export._verification`) for each source.

    The session's plan says which elements are kept and what was written; an
    instance the plan does not cover (written unplanned) is judged by the
    profile's actions instead.  Removed private elements the index holds no text
    for add their values, read from the originals, as ordinary values.  With
    ``unmapped`` (a file whose source is unknown), every planned instance's
    identity values are what such a file is searched for.
    """
    from gantry.export._session_inputs import _session_edits
    from gantry.export._verification import acknowledged, instance_tokens, written_paths
    from gantry.plan._tokens import value_hash

    cols = {"file_id": pl.Int64, "path": pl.String, "tag": pl.String, "vr": pl.String,
            "action": pl.String, "new_value": pl.String}  # fmt: skip
    plan = (
        store.scan("plan")
        .filter(pl.col("file_id").is_in(source_ids.implode()))
        .select(list(cols))
        .collect()
        .cast(cols)
        if "plan" in store.table_names()
        else pl.DataFrame(schema=cols)
    )
    unplanned = source.join(plan.select("file_id").unique(), on="file_id", how="anti")
    by_profile = (
        effective_actions(unplanned, actions, cfg, profile)
        .filter(pl.col("eff") != "K")
        .select(
            "file_id",
            "path",
            "tag",
            "vr",
            pl.col("eff").alias("action"),
            pl.lit(None, pl.String).alias("new_value"),
        )  # fmt: skip
        .cast(cols)
    )
    plan = pl.concat([plan, by_profile])
    tokens = instance_tokens(store, plan, cfg) if plan.height else {}
    acks = set(acknowledged(cfg))
    raw = _raw_private(store, source, actions, cfg, profile)
    for sid, text, keyword, tag in raw.select("source_id", "token", "keyword", "tag").iter_rows():
        text = text.upper()
        digest = value_hash(store.secret, text)
        if (tag, digest) not in acks:
            tokens.setdefault(sid, []).append(Token(text, False, tag, keyword or "", digest))
    edits, _ = _session_edits(store)
    rows: dict[int, list[tuple[str, str, str, str | None]]] = {}
    for fid, path, vr, action, nv in plan.select(
        "file_id", "path", "vr", "action", "new_value"
    ).iter_rows():
        rows.setdefault(fid, []).append((path, vr, action, nv))
    paths = {sid: written_paths(rows.get(sid, []), edits.get(sid, [])) for sid in tokens}
    anywhere: list[Token] = []
    if unmapped and "plan" in store.table_names():
        from gantry.export._verification import token_frame

        everyone = token_frame(
            store, store.scan("plan").select(list(cols)).collect(), cfg, identity_only=True
        ).unique("text", keep="first", maintain_order=True)
        anywhere = [
            Token(text, True, tag, kw, digest)
            for text, tag, kw, digest in everyone.select(
                "text", "tag", "keyword", "digest"
            ).iter_rows()
        ]
    return _Rules(tokens, paths, anywhere)


def _file_checks(
    dest: Path,
    out_files: pl.DataFrame,
    rules: _Rules,
    redact_plan: dict[int, str],
    skipped: pl.DataFrame,
    rel_of: dict[str, str],
    recorded_paths: list[str],
) -> pl.DataFrame:
    """The per-file checks: provenance, the byte scan, redaction; plus unreadable files."""
    rows: list[dict[str, Any]] = []
    recorded = set(recorded_paths)
    for path, reason in skipped.select("file_path", "reason").iter_rows():
        rel = rel_of.get(path, path)
        rows.append(
            {"output_path": rel, "rule": "readable", "detail": f"not readable as DICOM ({reason})"}
        )
        if rel not in recorded:
            rows.append(
                {
                    "output_path": rel,
                    "rule": "provenance",
                    "detail": "not written by an export recorded in this session",
                }
            )
        rows += _scan(rel, (dest / rel).read_bytes(), None, rules, None)
    for rel, sid, mapped_by, sha, ts in out_files.select(
        "output_path", "source_id", "mapped_by", "sha256", "transfer_syntax"
    ).iter_rows():
        data = (dest / rel).read_bytes()
        if mapped_by != "path":
            why = "not written by an export recorded in this session"
            if mapped_by is not None:
                why += f" (matches the {mapped_by} of an indexed instance)"
            rows.append({"output_path": rel, "rule": "provenance", "detail": why})
        elif hashlib.sha256(data).hexdigest() != sha:
            rows.append(
                {
                    "output_path": rel,
                    "rule": "provenance",
                    "detail": "changed since it was exported (SHA-256 differs)",
                }
            )
        rows += _scan(rel, data, sid, rules, ts)
        if sid is not None and sid in redact_plan:
            bad = check_redaction(data, redact_plan[sid])
            if bad is not None:
                rows.append(
                    {
                        "output_path": rel,
                        "rule": "redaction",
                        "tag": "(7FE0,0010)",
                        "keyword": "PixelData",
                        "detail": bad,
                    }
                )
    return pl.DataFrame(rows, schema=PROBLEM_SCHEMA)


def _scan(
    rel: str, data: bytes, sid: int | None, rules: _Rules, transfer_syntax: str | None
) -> list[dict[str, Any]]:
    """Export verification's search of one file's bytes and relative path (one hit at most).

    A file with no known source is searched for every instance's identity values.
    """
    from gantry.export._verification import file_leak

    if sid is None:
        tokens, paths = rules.anywhere, []
    else:
        tokens, paths = rules.tokens.get(sid, []), rules.paths.get(sid, [])
    leak = file_leak(data, tokens, paths, transfer_syntax=transfer_syntax or "", out_rel=rel)
    if leak is None:
        return []
    tok = leak.token
    return [
        {
            "output_path": rel,
            "rule": "identifying-values",
            "tag": f"({tok.tag[:4]},{tok.tag[4:]})",
            "keyword": tok.keyword or "(private or unknown)",
            "path": leak.where if leak.where and _ELEMENT_PATH.match(leak.where) else None,
            "detail": leak.reason,
        }
    ]


def _assemble(
    dest: Path,
    profile: Profile,
    cfg: Any,
    store: Store,
    problems: pl.DataFrame,
    out_files: pl.DataFrame,
    redacted_files: set[str],
    rel_of: dict[str, str],
    missing: pl.DataFrame,
    excluded: pl.DataFrame,
) -> ComplianceReport:
    from pydicom.uid import UID

    rels = sorted(rel_of.values())
    status_of: dict[str, dict[str, str]] = {r: {} for r in rels}
    for rel in missing["output_path"].to_list():
        status_of.setdefault(rel, {})
    readable = set(out_files["output_path"].to_list())
    failed_pairs = set(problems.select("output_path", "rule").iter_rows())
    n_problems = problems.group_by("output_path").len("n")
    counts = dict(n_problems.iter_rows())
    ts_of = dict(out_files.select("output_path", "transfer_syntax").iter_rows())
    missing_set = set(missing["output_path"].to_list())
    file_rows = []
    for rel in sorted(status_of):
        row: dict[str, Any] = {"output_path": rel}
        for rule in CHECKS:
            applies = rel in readable or rule in ("readable", "provenance")
            if rule == "redaction" and rel not in redacted_files:
                applies = False
            if rel in missing_set:
                applies = rule == "provenance"
            if (rel, rule) in failed_pairs:
                row[rule] = "fail"
            else:
                row[rule] = "pass" if applies else "n/a"
        bad = any(row[r] == "fail" for r in CHECKS)
        row["status"] = "missing" if rel in missing_set else ("fail" if bad else "pass")
        row["transfer_syntax"] = ts_of.get(rel)
        row["n_problems"] = counts.get(rel, 0)
        file_rows.append(row)
    files = pl.DataFrame(
        file_rows,
        schema={
            "output_path": pl.String,
            **{r: pl.String for r in CHECKS},
            "status": pl.String,
            "transfer_syntax": pl.String,
            "n_problems": pl.Int64,
        },
    ).select("output_path", "status", "transfer_syntax", "n_problems", *CHECKS)
    rule_rows = []
    for rule, check in CHECKS.items():
        col = files[rule]
        n_checked = int((col != "n/a").sum())
        n_failed = int((col == "fail").sum())
        rule_rows.append(
            {
                "rule": rule,
                "title": check.title,
                "description": check.description,
                "leak": check.leak,
                "files_checked": n_checked,
                "files_failed": n_failed,
                "problems": int((problems["rule"] == rule).sum()),
                "status": "fail" if n_failed else ("pass" if n_checked else "n/a"),
            }
        )
    rules = pl.DataFrame(rule_rows)
    codecs = (
        out_files.group_by("transfer_syntax")
        .len("files")
        .with_columns(
            pl.col("transfer_syntax")
            .map_elements(lambda u: UID(u).name if u else "", return_dtype=pl.String)
            .alias("name")
        )
        .select("transfer_syntax", "name", pl.col("files").cast(pl.Int64))
        .sort("files", "transfer_syntax", descending=[True, False])
    )
    leak_rules = [c.id for c in CHECKS.values() if c.leak]
    n_checked = files.filter(pl.col("status") != "missing").height
    summary = {
        "files_checked": n_checked,
        "files_passed": files.filter(pl.col("status") == "pass").height,
        "files_failed": files.filter(pl.col("status") == "fail").height,
        "files_missing": len(missing_set),
        "problems": problems.height,
        "leaks": problems.filter(pl.col("rule").is_in(leak_rules)).height,
        "excluded": excluded.filter(pl.col("status") == "excluded").height,
        "export_failed": excluded.filter(pl.col("status") == "failed").height,
    }
    settings = {
        **_export_run(store, dest),
        "config": getattr(cfg, "source", None),
        "remove_private_tags": getattr(cfg, "remove_private_tags", True),
        "safe_private_tags": len(getattr(cfg, "safe_private_tags", ()) or ()),
    }
    return ComplianceReport(
        export_dir=dest,
        compliant=n_checked > 0 and problems.height == 0,
        profile=profile.name,
        options=[str(getattr(o, "value", o)) for o in profile.options],
        edition=profile.edition,
        settings=settings,
        summary=summary,
        rules=rules,
        files=files,
        problems=problems,
        excluded=excluded,
        codecs=codecs,
    )
