"""The remediation plan: one row per action, computed with joins over whole columns."""

from gantry.plan._builder import PLAN_SCHEMA, build_plan, identity_tokens
from gantry.plan._keys import date_offset, remap_uid, uid_map

__all__ = ["PLAN_SCHEMA", "build_plan", "date_offset", "identity_tokens", "remap_uid", "uid_map"]
