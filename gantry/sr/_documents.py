"""Encapsulated documents (PDF, CDA): removed by default, checked under the option.

An Encapsulated PDF or CDA instance *is* its document, and its text is out of
reach of header rules (PDF streams are usually compressed, so a byte scan
sees nothing).  :func:`check_documents` decides, when the plan is built, for
every instance with a top-level Encapsulated Document (0042,0011):

- by default: ``removed`` - the instance is not exported, and is reported;
- with ``clean-structured-content``: the document's text is extracted (PDF
  through pypdf, ``pip install 'gantry[pdf]'``; CDA and other XML/text as
  decoded text) and searched for the instance's identity values (the same
  words SR text cleaning uses) and the free-text PHI patterns.  ``clean``
  documents are exported as they are; a document holding any of them
  (``identity-found``) or whose text cannot be extracted (``unreadable``: a
  scanned PDF, an unknown MIME type) is not exported (fail closed).

The outcome is the ``documents`` table (``file_id, mime_type, status,
reason``); export excludes every instance whose status is not ``clean``.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Final

import polars as pl
import pydicom

if TYPE_CHECKING:
    from gantry.store import Store

__all__ = ["DOCUMENTS_TABLE", "check_documents", "document_exclusions", "document_text"]

DOCUMENTS_TABLE: Final = "documents"
ENCAPSULATED_DOCUMENT: Final = "00420011"
_SCHEMA: Final = {"file_id": pl.Int64, "mime_type": pl.String, "status": pl.String,
                  "reason": pl.String}  # fmt: skip


def document_text(data: bytes, mime_type: str) -> str:
    """The text of an encapsulated document; raises ``ValueError`` when it has none.

    Examples
    --------
    >>> document_text(b"<ClinicalDocument><title>Report</title></ClinicalDocument>", "text/xml")
    'Report'
    """
    mime = mime_type.strip().lower()
    if mime == "application/pdf":
        from gantry._deps import require

        pypdf = require("pypdf", extra="pdf")
        reader = pypdf.PdfReader(io.BytesIO(data))
        text = "\n".join(page.extract_text() or "" for page in reader.pages)
        if not text.strip():
            raise ValueError("the PDF has no extractable text (scanned?)")
        return text
    if mime in {"text/xml", "application/xml", "text/plain"} or mime.endswith("+xml"):
        decoded = data.rstrip(b"\0").decode("utf-8", "replace")
        return re.sub(r"\s+", " ", re.sub(r"<[^>]*>", " ", decoded)).strip()
    raise ValueError(f"no text extractor for MIME type {mime_type!r}")


def check_documents(store: Store, *, check: bool, persist: bool = True) -> pl.DataFrame:
    """Decide every encapsulated document's fate and persist the ``documents`` table
    (unless ``persist`` is False: a dry run)."""
    from gantry.audit._rules import TEXT_PATTERNS
    from gantry.sr._clean import identity_words

    docs = (
        store.scan("elements")
        .filter(pl.col("path") == ENCAPSULATED_DOCUMENT)
        .select("file_id")
        .join(store.scan("instances").select("file_id", "file_path"), on="file_id")
        .collect()
    )
    rows: list[tuple[int, str, str, str]] = []
    if docs.height:
        tokens = identity_words(store, docs["file_id"]) if check else None
        patterns = [re.compile(p) for p in TEXT_PATTERNS.values()]
        for fid, path in docs.iter_rows():
            rows.append(_check_one(fid, path, tokens, patterns))
    table = pl.DataFrame(rows, schema=_SCHEMA, orient="row")
    if persist and (docs.height or DOCUMENTS_TABLE in store.table_names()):
        store.write_table(DOCUMENTS_TABLE, table)
    return table


def _check_one(
    fid: int, path: str, tokens: pl.DataFrame | None, patterns: list[re.Pattern[str]]
) -> tuple[int, str, str, str]:
    try:
        ds = pydicom.dcmread(path, force=True)
        mime = str(ds.get("MIMETypeOfEncapsulatedDocument", "") or "")
        data = bytes(ds.EncapsulatedDocument or b"")
    except Exception as exc:  # the instance is excluded, the batch goes on
        return fid, "", "unreadable", f"{type(exc).__name__} while reading the document"
    if tokens is None:
        return fid, mime, "removed", "encapsulated document: not exported by default"
    try:
        text = document_text(data, mime)
    except Exception as exc:
        return fid, mime, "unreadable", f"text could not be checked: {exc}"
    upper = text.upper()
    mine = tokens.filter(pl.col("file_id") == fid)["token"].to_list()
    if any(token in upper for token in mine):
        return fid, mime, "identity-found", "the document names the patient or a person"
    for pattern in patterns:
        if pattern.search(text):
            return fid, mime, "identity-found", "the document holds an identifier, date or contact"
    return fid, mime, "clean", ""


def document_exclusions(store: Store) -> pl.DataFrame:
    """``file_id, reason`` of every instance whose document may not be exported."""
    if DOCUMENTS_TABLE not in store.table_names():
        return pl.DataFrame(schema={"file_id": pl.Int64, "reason": pl.String})
    return store.sql(
        f"SELECT file_id, 'encapsulated document ' || status || ': ' || reason AS reason "
        f"FROM {DOCUMENTS_TABLE} WHERE status <> 'clean'"
    )


def document_actions(el: pl.DataFrame, docs: pl.DataFrame) -> pl.DataFrame:
    """Keep the clean documents in the plan (``docs`` from :func:`check_documents`).

    A checked-clean document's Encapsulated Document element is kept (``K``)
    instead of the profile's dummy; every other document's instance is
    excluded at export, so its element's action does not matter.
    """
    clean = docs.filter(pl.col("status") == "clean")["file_id"]
    keep = (pl.col("path") == ENCAPSULATED_DOCUMENT) & pl.col("file_id").is_in(clean.implode())
    return el.with_columns(
        pl.when(keep).then(pl.lit("K")).otherwise(pl.col("action")).alias("action"),
        pl.when(keep).then(pl.lit("document-checked")).otherwise(pl.col("rule")).alias("rule"),
    )
