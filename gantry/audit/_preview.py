"""Dry run of the anonymization: what each rule would do, counted, before anything is written."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import polars as pl

from gantry.audit._machines import match_machines
from gantry.audit._rules import AuditContext, with_actions

if TYPE_CHECKING:
    from gantry.store import Store

__all__ = ["PREVIEW_SCHEMA", "ACTION_NAMES", "ocr_rows", "preview"]

#: What each plan letter does (the ``effect`` column of :func:`preview`).
ACTION_NAMES: Final[dict[str, str]] = {
    "X": "remove",
    "Z": "empty",
    "D": "dummy",
    "K": "keep",
    "C": "clean",
    "U": "remap UID",
    "S": "shift date",
    "P": "pseudonym",
    "R": "replace",
    "H": "hash",
    "REDACT": "redact pixels",
    "DEFACE": "deface pixels",
}

#: Columns of :func:`preview`.
PREVIEW_SCHEMA: Final = pl.Schema(
    {
        "rule": pl.String,
        "tag": pl.String,
        "keyword": pl.String,
        "action": pl.String,
        "effect": pl.String,
        "elements": pl.UInt32,
        "instances": pl.UInt32,
    }
)


def preview(store: Store, config: Any = None, *, include_kept: bool = False) -> pl.DataFrame:
    """Count what the anonymization would do, per rule, tag and action.

    The resolved profile and the config's overrides are joined with every
    indexed element (nested and private ones included) and the effective action
    of each is counted; nothing is written.  It follows the plan's order of
    precedence (an element inside a removed sequence goes with it, then
    ``phi_tags``, ``keep``, the patient's name and ID, private elements, the
    profile), so it shows in seconds what :meth:`gantry.Session.anonymize`
    will plan.  Two refinements of the plan are not anticipated: a kept UI
    element that holds a UID remapped elsewhere is remapped too, and free text
    under ``C`` is emptied only when it names the patient.

    Parameters
    ----------
    store : Store
        The session store.
    config : Config, path, mapping or None
        The configuration (None: the default one).
    include_kept : bool
        Also count the elements that are kept (action ``K``).

    Returns
    -------
    DataFrame
        ``rule`` (the profile row's pattern such as ``"(0010,0010)"``, or
        ``sequence``, ``phi_tags``, ``keep``, ``patient_name``, ``pseudonym``,
        ``private``, ``default-keep``, ``machine:<name>``), ``tag``,
        ``keyword``, ``action`` (plan letter), ``effect`` (in words),
        ``elements`` and ``instances``; most frequent first.  File meta
        (group 0002) is rebuilt at export and not counted.  Last come the
        OCR rows on ``PixelData`` (:func:`ocr_rows`): ``ocr:scanned`` (images
        whose latest scan read every frame), ``ocr`` (of those, images with
        text to redact; ``elements`` counts the text regions), ``ocr:cleared``
        (no text found) and ``ocr:needs-scan`` (a burned-in text risk that
        neither a machine zone nor a full scan resolves).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from gantry import Session
    >>> from gantry.testing import make_instance
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = make_instance(tmp / "dicom" / "us.dcm", modality="US")
    >>> zone = {"name": "sonoria", "match": {"manufacturer": "Sonoria"},
    ...         "redaction_zones": [[0, 8, 0, 64]]}
    >>> with Session(tmp / "p.db") as s:
    ...     _ = s.ingest(tmp / "dicom", workers=1, progress=False)
    ...     counts = preview(s.store, {"machines": [zone]})
    >>> tags = ["00100010", "00100020", "00080020", "7FE00010"]
    >>> counts.filter(pl.col("tag").is_in(tags)).select("rule", "keyword", "effect", "elements")
    shape: (5, 4)
    ┌─────────────────┬─────────────┬───────────────┬──────────┐
    │ rule            ┆ keyword     ┆ effect        ┆ elements │
    │ ---             ┆ ---         ┆ ---           ┆ ---      │
    │ str             ┆ str         ┆ str           ┆ u32      │
    ╞═════════════════╪═════════════╪═══════════════╪══════════╡
    │ (0008,0020)     ┆ StudyDate   ┆ shift date    ┆ 1        │
    │ patient_name    ┆ PatientName ┆ pseudonym     ┆ 1        │
    │ pseudonym       ┆ PatientID   ┆ pseudonym     ┆ 1        │
    │ sequence        ┆ PatientID   ┆ remove        ┆ 1        │
    │ machine:sonoria ┆ PixelData   ┆ redact pixels ┆ 1        │
    └─────────────────┴─────────────┴───────────────┴──────────┘
    """
    context = config if isinstance(config, AuditContext) else AuditContext.from_config(config)
    elements = store.scan("elements").select(
        "file_id", "path", "tag", "depth", "keyword", "vr", "private_creator", "value"
    )
    actions = with_actions(elements.filter(~pl.col("tag").str.starts_with("0002")), context)
    if not include_kept:
        actions = actions.filter(pl.col("action") != "K")
    counted = actions.group_by(pl.col("decided_by").alias("rule"), "tag", "keyword", "action").agg(
        pl.len().alias("elements"),
        pl.col("file_id").n_unique().alias("instances"),
    )
    redact = (
        match_machines(store.scan("instances"), context.machines, elements=store.scan("elements"))
        .filter(pl.col("zones").list.len() > 0)
        .group_by(pl.format("machine:{}", pl.col("machine_name")).alias("rule"))
        .agg(pl.len().alias("elements"), pl.col("file_id").n_unique().alias("instances"))
        .with_columns(
            pl.lit("7FE00010").alias("tag"),
            pl.lit("PixelData").alias("keyword"),
            pl.lit("REDACT").alias("action"),
        )
    )
    cols = ["rule", "tag", "keyword", "action", "elements", "instances"]
    out = pl.concat(
        [counted.select(cols), redact.select(cols)], how="vertical_relaxed"
    ).with_columns(
        pl.col("action").replace_strict(ACTION_NAMES, default="?").alias("effect"),
        pl.col("elements").cast(pl.UInt32),
        pl.col("instances").cast(pl.UInt32),
    )
    counts = (
        out.select(list(PREVIEW_SCHEMA))
        .sort(["elements", "tag", "rule"], descending=[True, False, False])
        .collect(engine="streaming")
    )
    return pl.concat([counts, ocr_rows(store, context)])


#: The OCR rows of :func:`preview`: rule, action, effect, and the ``OcrStatus`` fields
#: counted as elements and as instances.
_OCR_ROWS: Final = (
    ("ocr:scanned", "-", "every frame read by OCR", "scanned", "scanned"),
    ("ocr", "REDACT", "redact pixels (text found)", "regions", "with_text"),
    ("ocr:cleared", "K", "keep pixels (no text found)", "cleared", "cleared"),
    ("ocr:needs-scan", "-", "burned-in risk: excluded by safe export until scanned",
     "needs_scan", "needs_scan"),
)  # fmt: skip


def ocr_rows(store: Store, context: AuditContext) -> pl.DataFrame:
    """The OCR state as preview rows (tag ``7FE00010``): images scanned in full, with
    text to redact (elements: text regions), cleared, and still needing a scan; rows
    that count nothing are left out."""
    from gantry.audit._ocr import ocr_status

    status = ocr_status(store, context).as_dict()
    rows = [
        (rule, "7FE00010", "PixelData", action, effect, status[elements], status[instances])
        for rule, action, effect, elements, instances in _OCR_ROWS
        if status[instances]
    ]
    return pl.DataFrame(rows, schema=PREVIEW_SCHEMA, orient="row")
