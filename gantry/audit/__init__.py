"""The PHI audit: rules as Polars expressions over the index → ``findings``.

Every rule is a function of whole columns of the ``elements`` and ``instances``
tables (``docs/audit.md`` lists them); nothing loops over files.
"""

from gantry.audit._machines import Machine, match_machines

__all__ = ["Machine", "match_machines"]
