"""The PHI audit: rules as Polars expressions over the index → ``findings``.

Every rule is a function of whole columns of the ``elements`` and ``instances``
tables; nothing loops over files.  ``docs/audit.md`` lists the rules.

Examples
--------
>>> from gantry.audit import RULES, Severity
>>> RULES["burned-in"].severity is Severity.HIGH
True
>>> list(RULES)[:3]
['profile-action', 'person-name', 'date-time']
"""

from gantry.audit._machines import match_machines
from gantry.audit._ocr import OcrStatus, ocr_status
from gantry.audit._preview import preview
from gantry.audit._report import AuditReport, audit, save_findings, unresolved
from gantry.audit._rules import FINDINGS_SCHEMA, RULES, Rule, Severity

__all__ = [
    "FINDINGS_SCHEMA",
    "RULES",
    "AuditReport",
    "OcrStatus",
    "Rule",
    "Severity",
    "audit",
    "match_machines",
    "ocr_status",
    "preview",
    "save_findings",
    "unresolved",
]
