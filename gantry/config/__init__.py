"""Gantry configuration, version 2: schema, strict validation, typed result.

:func:`load_config` reads a YAML file (or a mapping) into a frozen
:class:`Config`; :func:`write_default_config` writes a commented template.
``docs/config.md`` describes every key.

Examples
--------
>>> from gantry.config import load_config, TagAction
>>> cfg = load_config({"phi_tags": {"0008,1030": {"action": "keep"}}})
>>> cfg.phi_tags["0008,1030"].action is TagAction.KEEP
True
>>> cfg.phi_tags["00081030"].action.plan_action
'K'
"""

from gantry.config._load import load_config, write_default_config
from gantry.config._model import (
    Acknowledged,
    AgePolicy,
    BurnedIn,
    Config,
    DateJitter,
    Deface,
    Machine,
    MachineMatch,
    PhiTagRule,
    Pseudonym,
    SafePrivateTag,
    TagAction,
    TagMap,
)
from gantry.config._template import DEFAULT_CONFIG_YAML

__all__ = [
    "DEFAULT_CONFIG_YAML",
    "Acknowledged",
    "AgePolicy",
    "BurnedIn",
    "Config",
    "DateJitter",
    "Deface",
    "Machine",
    "MachineMatch",
    "PhiTagRule",
    "Pseudonym",
    "SafePrivateTag",
    "TagAction",
    "TagMap",
    "load_config",
    "write_default_config",
]
