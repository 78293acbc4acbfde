"""The review web app: a human signs off before release (``gantry review``).

A local web app over one session, bound to 127.0.0.1 with a random token in its
address: browse patients ▸ studies ▸ series ▸ instances, the audit findings
and each planned change; see thumbnails with their redaction zones (the
device's zones in the config, OCR text boxes, the plan's zones) drawn on them;
approve or exclude instances or series, and set a device's redaction zones.
Decisions become plan edits (exclusions, the stored config's ``machines``) and
are recorded in ``runs``; a later export honours them. Needs ``gantry[review]``.
``docs/review.md`` describes it.

Examples
--------
>>> from gantry.review import EXCLUDE_REASONS
>>> sorted(EXCLUDE_REASONS)
['burned-in-text', 'face', 'not-for-release', 'unusable']
"""

from gantry.review._app import create_app
from gantry.review._decisions import (
    DECISIONS_SCHEMA,
    EXCLUDE_REASONS,
    approve,
    decisions,
    device_zones,
    exclude,
    set_device_zones,
)
from gantry.review._server import serve
from gantry.review._thumbs import Zone, instance_zones, render_png

__all__ = [
    "DECISIONS_SCHEMA",
    "EXCLUDE_REASONS",
    "Zone",
    "approve",
    "create_app",
    "decisions",
    "device_zones",
    "exclude",
    "instance_zones",
    "render_png",
    "serve",
    "set_device_zones",
]
