"""The resolved profile: one action per attribute, as a table and a lookup."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final

import polars as pl

from gantry.errors import ConfigError
from gantry.profiles._codes import BASIC_PROFILE_CODE, CID7050, Action, ProfileOption
from gantry.profiles._patterns import Pattern, parse_tag
from gantry.profiles._spec import (
    ProfileSpec,
    locate,
    normalise_options,
    read_option,
    read_spec,
)

__all__ = ["Profile", "load_profile"]

_EXACT: Final = 0xFFFF_FFFF

#: Schema of :attr:`Profile.table`.
TABLE_SCHEMA: Final = pl.Schema(
    {
        "pattern": pl.String,
        "tag_value": pl.UInt32,
        "tag_mask": pl.UInt32,
        "name": pl.String,
        "keyword": pl.String,
        "basic_code": pl.String,
        "action": pl.String,
        "source": pl.String,
    }
)


@dataclass(frozen=True, slots=True)
class _Row:
    pattern: Pattern
    name: str | None
    keyword: str | None
    basic_code: str | None
    action: Action
    source: str


class Profile:
    """A privacy profile resolved to one action per attribute.

    Build one with :func:`load_profile`.  The profile is immutable; ``table``
    returns a fresh frame on each access.

    Attributes
    ----------
    name : str
        The profile's name (``"basic"``, ``"research"``, a user file's
        ``profile:`` or stem).
    options : tuple of ProfileOption
        The options in effect, in the order applied (later wins).  An option
        every row of which a later option overrides is dropped: asking for both
        date options keeps only the later one.
    edition : str
        The edition / source of the standard's table the profile came from.

    Examples
    --------
    >>> p = load_profile("basic", ["retain-uids"])
    >>> p.action_for(0x00100010), p.action_for(0x0020000D), p.action_for(0x00291008)
    (<Action.Z: 'Z'>, <Action.K: 'K'>, <Action.X: 'X'>)
    >>> p.table.filter(pl.col("keyword") == "StudyInstanceUID").select(
    ...     "pattern", "basic_code", "action", "source"
    ... )
    shape: (1, 4)
    ┌─────────────┬────────────┬────────┬─────────────┐
    │ pattern     ┆ basic_code ┆ action ┆ source      │
    │ ---         ┆ ---        ┆ ---    ┆ ---         │
    │ str         ┆ str        ┆ str    ┆ str         │
    ╞═════════════╪════════════╪════════╪═════════════╡
    │ (0020,000D) ┆ U          ┆ K      ┆ retain-uids │
    └─────────────┴────────────┴────────┴─────────────┘
    """

    __slots__ = ("_exact", "_masked", "_private", "_table", "edition", "name", "options")

    def __init__(
        self,
        *,
        name: str,
        options: tuple[ProfileOption, ...],
        edition: str,
        rows: Sequence[_Row],
    ) -> None:
        self.name = name
        self.options = options
        self.edition = edition
        ordered = sorted(
            rows, key=lambda r: (r.pattern.private, r.pattern.value, r.pattern.mask, r.pattern.text)
        )
        self._exact: dict[int, _Row] = {r.pattern.value: r for r in ordered if r.pattern.exact}
        masked = [r for r in ordered if not r.pattern.exact]
        self._masked: tuple[_Row, ...] = tuple(
            sorted(masked, key=lambda r: (-r.pattern.specificity, r.pattern.text))
        )
        self._private: _Row | None = next((r for r in masked if r.pattern.private), None)
        self._table = pl.DataFrame(
            {
                "pattern": [r.pattern.text for r in ordered],
                "tag_value": [r.pattern.value for r in ordered],
                "tag_mask": [r.pattern.mask for r in ordered],
                "name": [r.name for r in ordered],
                "keyword": [r.keyword for r in ordered],
                "basic_code": [r.basic_code for r in ordered],
                "action": [r.action.value for r in ordered],
                "source": [r.source for r in ordered],
            },
            schema=TABLE_SCHEMA,
        )

    def __repr__(self) -> str:
        opts = ", ".join(repr(o.value) for o in self.options)
        return f"Profile({self.name!r}, options=[{opts}], rows={self._table.height})"

    @property
    def table(self) -> pl.DataFrame:
        """One row per attribute or pattern.

        Columns: ``pattern`` (``"(0010,0010)"``, ``"(60xx,3000)"`` or the
        private pattern), ``tag_value`` and ``tag_mask`` (UInt32; a tag
        matches when ``tag & tag_mask == tag_value``; ``x`` digits are 0 in
        both; the private row has both ``0x00010000``, the low bit of the
        group), ``name``, ``keyword`` (null when pydicom has none),
        ``basic_code`` (the standard's Basic Profile code, verbatim; null for
        rows a profile file adds), ``action`` (one letter) and ``source``
        (``"basic"``, the option or the profile file that set the action).

        Note that patterns with ``x`` in the group only match even groups
        (repeating groups are even); :meth:`action_for` and :meth:`match`
        apply that rule.
        """
        return self._table.clone()

    def action_for(self, tag: int | str) -> Action | None:
        """The action for one tag, or None when the profile has no rule for it.

        An exact row wins over patterns; among matching patterns the most
        specific (most fixed bits) wins, so the private row (odd groups) comes
        last.  Private tags get the private row's action, which is ``C`` under
        ``retain-safe-private``: see :meth:`private_action`.

        Parameters
        ----------
        tag : int or str
            ``0x00100010`` or tag text such as ``"0010,0010"``.

        Examples
        --------
        >>> p = load_profile("basic")
        >>> [str(p.action_for(t)) for t in (0x00100010, 0x60023000, 0x50100200, 0x00091001)]
        ['Z', 'X', 'X', 'X']
        >>> p.action_for("0028,0010") is None
        True
        """
        value = parse_tag(tag) if isinstance(tag, str) else int(tag)
        row = self._exact.get(value)
        if row is not None:
            return row.action
        for row in self._masked:
            if row.pattern.matches(value):
                return row.action
        return None

    def private_action(self, *, safe: bool = False) -> Action:
        """How a private (odd-group) element is treated.

        The Basic Profile removes every private element (``X``).  Under
        ``retain-safe-private`` the private row is ``C``: elements listed as
        safe (``safe_private_tags`` in the config) are kept (``K``) together
        with their private creator, every other one is removed (``X``).  A
        profile without a private row removes private elements (fail closed).

        Examples
        --------
        >>> p = load_profile("basic", ["retain-safe-private"])
        >>> str(p.private_action(safe=True)), str(p.private_action(safe=False))
        ('K', 'X')
        >>> str(load_profile("basic").private_action(safe=True))
        'X'
        """
        if self._private is None:
            return Action.X
        action = self._private.action
        if action is Action.C:
            return Action.K if safe else Action.X
        return action

    def match(self, tags: pl.Series | Iterable[int | str]) -> pl.DataFrame:
        """Resolve many tags at once, the vectorised :meth:`action_for`.

        Parameters
        ----------
        tags : Series or iterable of int or str
            Integer tags or tag text (``"00100010"`` as in the ``elements``
            table).

        Returns
        -------
        DataFrame
            Row-aligned with ``tags``: ``tag`` (UInt32), ``pattern``,
            ``action`` and ``source`` (null where no rule applies).

        Examples
        --------
        >>> hits = load_profile("basic").match(["00100010", "60023000", "00091001", "00280010"])
        >>> hits.select("pattern", "action")
        shape: (4, 2)
        ┌───────────────────────────────┬────────┐
        │ pattern                       ┆ action │
        │ ---                           ┆ ---    │
        │ str                           ┆ str    │
        ╞═══════════════════════════════╪════════╡
        │ (0010,0010)                   ┆ Z      │
        │ (60xx,3000)                   ┆ X      │
        │ (gggg,eeee) where gggg is odd ┆ X      │
        │ null                          ┆ null   │
        └───────────────────────────────┴────────┘
        """
        series = tags if isinstance(tags, pl.Series) else pl.Series("tag", list(tags))
        if series.dtype == pl.String:
            series = series.str.replace_all(r"[(),\s]", "").str.to_integer(base=16)
        frame = pl.DataFrame({"tag": series.cast(pl.UInt32)})
        cols = ["pattern", "action", "source"]
        exact = self._table.filter(pl.col("tag_mask") == _EXACT).select(
            pl.col("tag_value").alias("tag"), *cols
        )
        masked = pl.DataFrame(
            {
                "_idx": list(range(len(self._masked))),
                "_m_pattern": [r.pattern.text for r in self._masked],
                "_m_action": [r.action.value for r in self._masked],
                "_m_source": [r.source for r in self._masked],
            },
            schema={"_idx": pl.Int32, **{f"_m_{c}": pl.String for c in cols}},
        )
        idx: pl.Expr = pl.lit(None, dtype=pl.Int32)
        for i in reversed(range(len(self._masked))):
            p = self._masked[i].pattern
            hit = (pl.col("tag") & pl.lit(p.match_mask, dtype=pl.UInt32)) == p.value
            idx = pl.when(hit).then(pl.lit(i, dtype=pl.Int32)).otherwise(idx)
        return (
            frame.join(exact, on="tag", how="left", maintain_order="left")
            .with_columns(idx.alias("_idx"))
            .join(masked, on="_idx", how="left", maintain_order="left")
            .select(
                "tag",
                *[pl.coalesce(pl.col(c), pl.col(f"_m_{c}")).alias(c) for c in cols],
            )
        )

    @property
    def deidentification_codes(self) -> list[tuple[str, str]]:
        """CID 7050 (code value, code meaning) pairs for the profile and options.

        These fill DeidentificationMethodCodeSequence (0012,0064), coding
        scheme ``DCM``.  Pixel cleaning is recorded by the export stage with
        :meth:`deidentification_codes_for`.

        Examples
        --------
        >>> load_profile("basic", ["retain-uids", "clean-descriptors"]).deidentification_codes
        [('113100', 'Basic Application Confidentiality Profile'), ('113105', 'Clean Descriptors Option'), ('113110', 'Retain UIDs Option')]
        """
        return self.deidentification_codes_for()

    def deidentification_codes_for(
        self, *, pixel_data_cleaned: bool = False, visual_features_cleaned: bool = False
    ) -> list[tuple[str, str]]:
        """CID 7050 codes, adding the pixel options the export stage applied.

        Examples
        --------
        >>> [c for c, _ in load_profile("basic").deidentification_codes_for(pixel_data_cleaned=True)]
        ['113100', '113101']
        """
        codes = {BASIC_PROFILE_CODE} | {o.code for o in self.options}
        if pixel_data_cleaned:
            codes.add("113101")
        if visual_features_cleaned:
            codes.add("113102")
        return [(c, CID7050[c]) for c in sorted(codes)]


def _chain(top: Path) -> tuple[ProfileSpec, ...]:
    """The specs from the root table down to ``top``."""
    chain: list[ProfileSpec] = []
    seen: list[Path] = []
    path: Path | None = top
    while path is not None:
        if path in seen:
            raise ConfigError(
                "extends",
                expected="a chain of profiles without a cycle",
                got=" -> ".join(p.name for p in [*seen, path]),
                source=seen[-1],
            )
        seen.append(path)
        spec = read_spec(path)
        if spec.kind == "option":
            raise ConfigError(
                "profile",
                expected="a profile, not an option file",
                got=spec.name,
                hint=f"use a profile such as 'basic' and list {spec.name!r} under options",
                source=path,
            )
        chain.append(spec)
        if spec.extends is None:
            path = None
        else:
            try:
                path = locate(spec.extends, base=spec.path.parent, key="extends")
            except ConfigError as exc:
                raise ConfigError(
                    "extends", expected=exc.expected, got=exc.got, hint=exc.hint, source=spec.path
                ) from None
    return tuple(reversed(chain))


def _dedupe_keep_last(options: Sequence[ProfileOption]) -> tuple[ProfileOption, ...]:
    last = {o: i for i, o in enumerate(options)}
    return tuple(o for i, o in enumerate(options) if last[o] == i)


@functools.lru_cache(maxsize=32)
def _build(chain: tuple[ProfileSpec, ...], options: tuple[ProfileOption, ...]) -> Profile:
    from pydicom.datadict import dictionary_description, keyword_for_tag

    root = chain[0]
    rows: dict[str, _Row] = {}
    for r in root.rows:
        rows[r.pattern.text] = _Row(
            r.pattern, r.name, r.keyword, r.code or r.basic_code, r.action, root.name
        )
    for option in options:
        for r in read_option(option).rows:
            current = rows.get(r.pattern.text)
            if current is None:
                rows[r.pattern.text] = _Row(
                    r.pattern, r.name, r.keyword, r.basic_code, r.action, option.value
                )
            else:
                rows[r.pattern.text] = replace(current, action=r.action, source=option.value)
    in_effect = {row.source for row in rows.values()}
    effective = tuple(o for o in options if o.value in in_effect)
    for spec in chain[1:]:
        for r in spec.rows:
            current = rows.get(r.pattern.text)
            if current is None:
                keyword, name = r.keyword, r.name
                if r.pattern.exact:
                    keyword = keyword or keyword_for_tag(r.pattern.value) or None
                    if name is None and keyword:
                        name = dictionary_description(r.pattern.value)
                rows[r.pattern.text] = _Row(r.pattern, name, keyword, None, r.action, spec.name)
            else:
                rows[r.pattern.text] = replace(
                    current,
                    action=r.action,
                    source=spec.name,
                    name=r.name or current.name,
                    keyword=r.keyword or current.keyword,
                )
    return Profile(
        name=chain[-1].name,
        options=effective,
        edition=root.edition or "unspecified",
        rows=list(rows.values()),
    )


def load_profile(name_or_path: str | Path, options: Iterable[str | ProfileOption] = ()) -> Profile:
    """Load a built-in or user privacy profile and apply options.

    Parameters
    ----------
    name_or_path : str or Path
        ``"basic"``, ``"comprehensive"``, ``"research"`` or the path of a
        profile YAML (which may ``extends:`` another profile).
    options : iterable of str or ProfileOption
        Options applied after the profile's own, in order; where two touch the
        same attribute the later wins.  Rows written in the profile files are
        applied last and win over every option.

    Returns
    -------
    Profile

    Raises
    ------
    ConfigError
        For an unknown profile or option, or a mistake in a profile file.

    Examples
    --------
    >>> p = load_profile("basic", ["retain-longitudinal-modified-dates"])
    >>> p.name, [o.value for o in p.options], p.table.height
    ('basic', ['retain-longitudinal-modified-dates'], 621)
    >>> str(p.action_for(0x00080020))  # StudyDate: shifted ("cleaned")
    'C'
    >>> load_profile("basci")
    Traceback (most recent call last):
    ...
    gantry.errors.ConfigError: `profile` must be one of 'basic', 'comprehensive', 'research' or a path to a .yaml file, got 'basci' (did you mean 'basic'?)
    """
    requested = normalise_options(list(options) if not isinstance(options, str) else options)
    chain = _chain(locate(name_or_path))
    inherited = [o for spec in chain[1:] for o in spec.options]
    return _build(chain, _dedupe_keep_last([*inherited, *requested]))
