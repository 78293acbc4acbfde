"""Which BIDS datatype and suffix a series gets: ordered rules, first match wins.

Rules match regular expressions (``re.search``) against the series' indexed
``Modality``, ``SeriesDescription``, ``ProtocolName`` and ``ImageType`` (the
session-side values: they only choose a label, and only the rule's own fixed
labels reach the output), and against ``kind``: ``"3d"``, ``"4d"`` or ``"dwi"``
(4-D with b-values). A rules file is YAML or JSON::

    bids_rules:
      - match: {Modality: MR, SeriesDescription: "(?i)mprage"}
        datatype: anat
        suffix: T1w
        entities: {acq: mprage}
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gantry.errors import ConfigError

MATCH_FIELDS = ("Modality", "SeriesDescription", "ProtocolName", "ImageType", "kind")
DATATYPES = ("anat", "func", "dwi", "fmap", "perf", "pet")
ENTITIES = ("task", "acq", "ce", "rec", "dir", "echo")
_LABEL = re.compile(r"[A-Za-z0-9]+")


@dataclass(frozen=True)
class BidsRule:
    """One rule: when every pattern in ``match`` is found, use ``datatype``/``suffix``.

    Examples
    --------
    >>> rule = BidsRule({"SeriesDescription": "(?i)flair"}, "anat", "FLAIR")
    >>> rule.matches({"SeriesDescription": "AX T2 FLAIR", "kind": "3d"})
    True
    """

    match: Mapping[str, str]
    datatype: str
    suffix: str
    entities: Mapping[str, str] = field(default_factory=dict)

    def matches(self, values: Mapping[str, str | None]) -> bool:
        """Whether every pattern is found in the corresponding value."""
        for key, pattern in self.match.items():
            value = values.get(key)
            if value is None or re.search(pattern, value) is None:
                return False
        return True


DEFAULT_BIDS_RULES: tuple[BidsRule, ...] = (
    BidsRule({"Modality": "^MR$", "kind": "^dwi$"}, "dwi", "dwi"),
    BidsRule(
        {"Modality": "^MR$", "kind": "^4d$", "SeriesDescription": r"(?i)bold|fmri|rest|task"},
        "func",
        "bold",
        {"task": "rest"},
    ),
    BidsRule(
        {"Modality": "^MR$", "kind": "^3d$", "SeriesDescription": r"(?i)flair"}, "anat", "FLAIR"
    ),
    BidsRule(
        {"Modality": "^MR$", "kind": "^3d$", "SeriesDescription": r"(?i)t1|mprage|spgr|tfl|bravo"},
        "anat",
        "T1w",
    ),
    BidsRule({"Modality": "^MR$", "kind": "^3d$", "SeriesDescription": r"(?i)t2"}, "anat", "T2w"),
    BidsRule(
        {"Modality": "^MR$", "kind": "^3d$", "SeriesDescription": r"(?i)\bpd\b|proton"},
        "anat",
        "PDw",
    ),
)
"""The rules used when none are given: MR diffusion, BOLD, FLAIR, T1w, T2w, PDw."""


def load_bids_rules(source: Any) -> tuple[BidsRule, ...]:
    """Read rules from a YAML/JSON file, a mapping with ``bids_rules``, or a list.

    ``None`` gives :data:`DEFAULT_BIDS_RULES`; mistakes raise ``ConfigError`` naming the key.

    Examples
    --------
    >>> load_bids_rules([{"match": {"Modality": "CT"}, "datatype": "anat", "suffix": "ct"}])[0].suffix
    'ct'
    >>> load_bids_rules([{"match": {"Modality": "CT"}, "datatype": "anatomy", "suffix": "x"}])
    Traceback (most recent call last):
    ...
    gantry.errors.ConfigError: `bids_rules[0].datatype` must be one of 'anat', 'func', 'dwi', 'fmap', 'perf', 'pet', got 'anatomy'
    """
    if source is None:
        return DEFAULT_BIDS_RULES
    origin = None
    if isinstance(source, str | os.PathLike):
        origin = Path(source)
        try:
            text = origin.read_text()
        except OSError as exc:
            raise ConfigError("bids_rules", expected="a readable YAML or JSON file",
                              got=str(origin), hint=type(exc).__name__) from exc  # fmt: skip
        source = json.loads(text) if origin.suffix == ".json" else yaml.safe_load(text)
    if isinstance(source, Mapping):
        if set(source) != {"bids_rules"}:
            raise ConfigError("bids_rules", expected="the only top-level key",
                              got=sorted(map(str, source)), source=origin)  # fmt: skip
        source = source["bids_rules"]
    if not isinstance(source, Sequence) or isinstance(source, str):
        raise ConfigError("bids_rules", expected="a list of rules", got=type(source).__name__,
                          source=origin)  # fmt: skip
    return tuple(_rule(raw, f"bids_rules[{n}]", origin) for n, raw in enumerate(source))


def _rule(raw: Any, path: str, origin: Path | None) -> BidsRule:
    def fail(key: str, expected: str, got: Any) -> ConfigError:
        return ConfigError(f"{path}{key}", expected=expected, got=got, source=origin)

    if isinstance(raw, BidsRule):
        return raw
    if not isinstance(raw, Mapping):
        raise fail("", "a mapping with match, datatype, suffix", type(raw).__name__)
    unknown = set(raw) - {"match", "datatype", "suffix", "entities"}
    if unknown:
        raise fail(f".{sorted(unknown)[0]}", "one of match, datatype, suffix, entities",
                   sorted(unknown)[0])  # fmt: skip
    match = raw.get("match") or {}
    if not isinstance(match, Mapping) or not match:
        raise fail(".match", "a non-empty mapping of field to pattern", match)
    for key, pattern in match.items():
        if key not in MATCH_FIELDS:
            raise fail(f".match.{key}", "one of " + ", ".join(MATCH_FIELDS), key)
        try:
            re.compile(str(pattern))
        except re.error as exc:
            raise fail(f".match.{key}", "a regular expression", pattern) from exc
    datatype = raw.get("datatype")
    if datatype not in DATATYPES:
        raise fail(".datatype", "one of " + ", ".join(repr(d) for d in DATATYPES), datatype)
    suffix = raw.get("suffix")
    if not isinstance(suffix, str) or not _LABEL.fullmatch(suffix):
        raise fail(".suffix", "letters and digits only", suffix)
    entities = raw.get("entities") or {}
    if not isinstance(entities, Mapping):
        raise fail(".entities", "a mapping of entity to label", entities)
    for key, label in entities.items():
        if key not in ENTITIES:
            raise fail(f".entities.{key}", "one of " + ", ".join(ENTITIES), key)
        if not isinstance(label, str | int) or not _LABEL.fullmatch(str(label)):
            raise fail(f".entities.{key}", "letters and digits only", label)
    if datatype == "func" and "task" not in entities:
        raise fail(".entities.task", "a task label (BIDS requires one for func)", None)
    return BidsRule(
        {str(k): str(v) for k, v in match.items()},
        str(datatype),
        suffix,
        {str(k): str(v) for k, v in entities.items()},
    )


def pick_rule(rules: Sequence[BidsRule], values: Mapping[str, str | None]) -> int | None:
    """Index of the first rule matching ``values`` (None when none does).

    Examples
    --------
    >>> pick_rule(DEFAULT_BIDS_RULES, {"Modality": "MR", "SeriesDescription": "T1 MPRAGE", "kind": "3d"})
    3
    >>> pick_rule(DEFAULT_BIDS_RULES, {"Modality": "CT", "SeriesDescription": "CHEST", "kind": "3d"}) is None
    True
    """
    for n, rule in enumerate(rules):
        if rule.matches(values):
            return n
    return None
