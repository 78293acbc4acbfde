"""Structured Reports: the ``sr_content`` table and the cleaning of SR content.

- :func:`content_table` regroups the ``elements`` rows of SR documents into
  one typed row per content item; ingest writes it as the ``sr_content``
  table, so a dose report's CTDIvol or DLP is one SQL query away.
- With the ``clean-structured-content`` option the plan cleans SR content
  per item (:func:`clean_text` for Text Values) instead of dropping it, and
  encapsulated documents are checked (:func:`document_text`) rather than
  withheld; the outcome is the ``documents`` table, which export reads
  (:func:`document_exclusions`).

Examples
--------
>>> from gantry.sr import SR_CONTENT_SCHEMA
>>> SR_CONTENT_SCHEMA.names[:4]
['file_id', 'tree_path', 'parent_path', 'depth']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gantry.sr._clean import REDACTED, clean_text
from gantry.sr._content import SR_CONTENT_SCHEMA, content_table

if TYPE_CHECKING:
    from gantry.sr._documents import DOCUMENTS_TABLE, document_exclusions, document_text

__all__ = [
    "DOCUMENTS_TABLE",
    "REDACTED",
    "SR_CONTENT_SCHEMA",
    "clean_text",
    "content_table",
    "document_exclusions",
    "document_text",
]


def __getattr__(name: str) -> Any:
    # the documents module reads files with pydicom: loaded on first use, so that
    # opening a store (which only needs SR_CONTENT_SCHEMA) does not import pydicom
    if name in ("DOCUMENTS_TABLE", "document_exclusions", "document_text"):
        from gantry.sr import _documents

        return getattr(_documents, name)
    raise AttributeError(f"module 'gantry.sr' has no attribute {name!r}")
