"""Structured Reports: the ``sr_content`` table and the cleaning of SR content.

- :func:`content_table` regroups the ``elements`` rows of SR documents into
  one typed row per content item; ingest writes it as the ``sr_content``
  table, so a dose report's CTDIvol or DLP is one SQL query away.

Examples
--------
>>> from gantry.sr import SR_CONTENT_SCHEMA
>>> SR_CONTENT_SCHEMA.names[:4]
['file_id', 'tree_path', 'parent_path', 'depth']
"""

from gantry.sr._content import SR_CONTENT_SCHEMA, content_table

__all__ = ["SR_CONTENT_SCHEMA", "content_table"]
