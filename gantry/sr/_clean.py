"""Plan actions for SR content and graphics (PS3.15's C on Content Sequence, Clean Graphics).

With the Clean Structured Content option the profile keeps Content Sequence
(0040,A730) and Acquisition Context Sequence (0040,0555) and cleans what is
inside them, per content item, instead of dropping the clinical content:

- PNAME (any PN in a content item): replaced by a dummy (``D``);
- TEXT (Text Value): every word holding an identity value of the instance -
  the patient's name parts, IDs, accession number, birth date, and every
  person name anywhere in the file - and every match of the free-text PHI
  patterns (``gantry.audit`` ``TEXT_PATTERNS``: names with titles, IDs,
  dates, phone numbers, e-mail and street addresses) becomes ``[REDACTED]``;
  the row is an ``R`` with the cleaned text (kept when nothing matched);
- DATE / DATETIME (and every DA / DT in an item): shifted with the patient's
  own offset (``S``), as every other date of the export;
- TIME: kept (a shift by whole days does not change a time of day);
- UIDREF (the item's UID): remapped with the export's UID map (``U``), as
  are referenced SOP instances (the profile's ``U``); coding scheme UIDs and
  other UIDs that name no instance are kept;
- CODE, NUM, SCOORD, TCOORD, concept names: kept.

The tree keeps its shape (no item is added or dropped, no Type 1 value is
emptied), so the document stays valid.  Config ``phi_tags`` and ``keep``
still win over these rules.

In an SR document the Referenced Performed Procedure Step Sequence, Type 2
there, is emptied rather than removed (the profile's code is X/Z/D), and the
Verifying Observer Sequence (Type 1C, ``D``) keeps its item, whose name,
organization and date-time get the profile's own dummies (an empty sequence
would make a VERIFIED document invalid).

Overlays: when Overlay Data (60xx,3000) is removed - by the Basic Profile, or
under Clean Graphics, where Gantry removes rather than cleans it - the rest of
that overlay group goes too (an Overlay Plane without its data is invalid),
and so do Graphic Annotation Sequence and Curve Data under Clean Graphics.
Without it, the profile's dummy of Graphic Annotation Sequence keeps its first
item; the Unformatted Text Value of that item's text objects gets a dummy
(rule ``annotation-text``), as nothing else would clean that free text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import polars as pl

if TYPE_CHECKING:
    from gantry.store import Store

__all__ = ["REDACTED", "content_actions", "text_rows"]

RULE: Final = "clean-structured-content"
GRAPHICS_RULE: Final = "clean-graphics"
REDACTED: Final = "[REDACTED]"
"""What replaces a word or a pattern match removed from a Text Value."""

TEXT_VALUE: Final = "0040A160"
UID_VALUE: Final = "0040A124"
VALUE_TYPE: Final = "0040A040"
PPS_SEQUENCE: Final = "00081111"
VERIFIER_SEQUENCE: Final = "0040A073"
_IN_CONTENT: Final = r"(?:^|\.)(?:0040A730|00400555)\[\d+\]\."
_OVERRIDDEN: Final = ("config", "keep")
_GRAPHIC_ANNOTATION: Final = "00700001"
_ANNOTATION_TEXT: Final = "00700006"
ANNOTATION_RULE: Final = "annotation-text"


def _in_content() -> pl.Expr:
    return pl.col("path").str.contains(_IN_CONTENT) & ~pl.col("rule").is_in(_OVERRIDDEN)


def content_text() -> pl.Expr:
    """Rows that :func:`text_rows` cleans: kept Text Values of SR content items."""
    return _in_content() & (pl.col("tag") == TEXT_VALUE) & (pl.col("action") == "K")


def content_actions(el: pl.DataFrame, *, clean_content: bool, clean_graphics: bool) -> pl.DataFrame:
    """Set ``action`` / ``rule`` of SR content and overlay elements (plan step 6½).

    Runs on the plan's element frame once the profile, config and private
    rules have chosen an action, before the UID-reference and clean steps.

    Examples
    --------
    >>> import polars as pl
    >>> el = pl.DataFrame({
    ...     "file_id": [1] * 6,
    ...     "path": ["0040A730[0].0040A123", "0040A730[0].0040A121", "0040A730[0].0040A122",
    ...              "0040A730[0].0040A124", "60000010", "60003000"],
    ...     "tag": ["0040A123", "0040A121", "0040A122", "0040A124", "60000010", "60003000"],
    ...     "vr": ["PN", "DA", "TM", "UI", "US", "OW"],
    ...     "action": ["D", "D", "D", "U", "K", "X"],
    ...     "rule": ["basic"] * 4 + ["default-keep", "basic"],
    ... })
    >>> content_actions(el, clean_content=True, clean_graphics=False)["action"].to_list()
    ['D', 'S', 'K', 'U', 'X', 'X']
    """
    action, rule = pl.col("action"), pl.col("rule")
    if clean_content:
        inside = _in_content()
        vr = pl.col("vr")
        new = (
            pl.when(inside & vr.is_in(["DA", "DT"]) & (action != "X"))
            .then(pl.lit("S"))
            .when(inside & (vr == "TM") & (action != "X"))
            .then(pl.lit("K"))
            .when(inside & (vr == "PN"))
            .then(pl.lit("D"))
            .when(inside & (pl.col("tag") == UID_VALUE))
            .then(pl.lit("U"))
            .otherwise(action)
        )
        el = el.with_columns(
            new.alias("action"),
            pl.when(inside & (new != action)).then(pl.lit(RULE)).otherwise(rule).alias("rule"),
        )
    group = pl.col("tag").str.slice(0, 4)
    top = ~pl.col("path").str.contains(".", literal=True)
    # in an SR document, Referenced Performed Procedure Step Sequence is Type 2 (SR
    # Document Series): the profile's X/Z/D empties it there rather than removing it
    reports = el.filter(pl.col("path") == VALUE_TYPE).select("file_id").unique()
    if reports.height:
        in_report = pl.col("file_id").is_in(reports["file_id"].implode())
        type2 = in_report & (pl.col("path") == PPS_SEQUENCE) & (action == "X")
        # Verifying Observer Sequence is Type 1C (VERIFIED documents): its dummy is the
        # sequence kept, with each of its elements given its own dummy by the profile
        verifier = in_report & (pl.col("path") == VERIFIER_SEQUENCE) & (action == "D")
        el = el.with_columns(
            pl.when(type2)
            .then(pl.lit("Z"))
            .when(verifier)
            .then(pl.lit("K"))
            .otherwise(action)
            .alias("action")
        )
    overlay_group = (
        top
        & group.str.contains(r"^60[0-1][0-9A-E]$")
        & (pl.col("tag").str.to_integer(base=16, strict=False) // 65536 % 2 == 0)
    )
    if clean_graphics:
        graphics = (action == "C") & (
            (overlay_group & pl.col("tag").str.ends_with("3000"))
            | (overlay_group & pl.col("tag").str.ends_with("4000"))
            | (top & group.str.contains(r"^50[0-1][0-9A-E]$"))
            | (top & (pl.col("tag") == _GRAPHIC_ANNOTATION))
        )
        el = el.with_columns(
            pl.when(graphics).then(pl.lit("X")).otherwise(action).alias("action"),
            pl.when(graphics).then(pl.lit(GRAPHICS_RULE)).otherwise(rule).alias("rule"),
        )
    # the item a Graphic Annotation Sequence's dummy keeps is written under its own rules,
    # where no rule reaches the Unformatted Text Value (0070,0006) of its text objects:
    # free text on the image (a name, a phone number) gets the dummy too (Type 1 there)
    annotation_text = (
        pl.col("path").str.starts_with(_GRAPHIC_ANNOTATION + "[")
        & (pl.col("tag") == _ANNOTATION_TEXT)
        & (action == "K")
        & ~rule.is_in(_OVERRIDDEN)
    )
    el = el.with_columns(
        pl.when(annotation_text).then(pl.lit("D")).otherwise(action).alias("action"),
        pl.when(annotation_text).then(pl.lit(ANNOTATION_RULE)).otherwise(rule).alias("rule"),
    )
    # an overlay plane whose data is removed is removed whole
    data_removed = overlay_group & pl.col("tag").str.ends_with("3000") & (action == "X")
    gone = el.filter(data_removed).select("file_id", group.alias("_g")).unique()
    el = el.with_columns(group.alias("_g")).join(
        gone.with_columns(pl.lit(True).alias("_gone")), on=["file_id", "_g"], how="left"
    )
    hit = overlay_group & pl.col("_gone").fill_null(False) & (action != "X")
    return el.with_columns(
        pl.when(hit).then(pl.lit("X")).otherwise(action).alias("action"),
        pl.when(hit).then(pl.lit("overlay")).otherwise(rule).alias("rule"),
    ).drop("_g", "_gone")


def identity_words(store: Store, file_ids: pl.Series) -> pl.DataFrame:
    """``file_id, token``: upper-case identity tokens of each file, person names included."""
    from gantry.plan._builder import identity_tokens
    from gantry.plan._match import long_enough

    names = (
        store.scan("elements")
        .filter((pl.col("vr") == "PN") & pl.col("file_id").is_in(file_ids.implode()))
        .select(
            "file_id",
            pl.col("value").fill_null("").str.replace_all(r"[=^\\ ]", "\n").str.split("\n"),
        )
        .explode("value")
        .select("file_id", pl.col("value").str.strip_chars().str.to_uppercase().alias("token"))
        .filter(long_enough(pl.col("token")))
        .collect()
    )
    ids = identity_tokens(store).filter(pl.col("file_id").is_in(file_ids.implode()))
    # an identifier with spaces in it is matched word by word, as the text is split
    words = ids.with_columns(pl.col("token").str.split(" ")).explode("token")
    words = words.filter(long_enough(pl.col("token")))
    return pl.concat([ids, words, names]).unique()


def clean_text(texts: pl.DataFrame, tokens: pl.DataFrame) -> pl.Series:
    """Clean the ``value`` of each ``texts`` row (keyed by ``file_id``) as described above.

    Examples
    --------
    >>> import polars as pl
    >>> texts = pl.DataFrame({"file_id": [1, 1], "value": ["Jane Doe seen; call 555-123-4567.",
    ...                                                      "Nodule stable."]})
    >>> tokens = pl.DataFrame({"file_id": [1, 1], "token": ["JANE", "DOE"]})
    >>> clean_text(texts, tokens).to_list()
    ['[REDACTED] [REDACTED] seen; call [REDACTED].', 'Nodule stable.']
    """
    from gantry.audit._rules import TEXT_PATTERNS

    words = (
        texts.select("file_id", pl.col("value").fill_null(""))
        .with_row_index("_row")
        .with_columns(pl.col("value").str.split(" ").alias("_word"))
        .explode("_word")
        .with_row_index("_pos")
    )
    hits = (
        words.select("_pos", "file_id", "_word")
        .join(tokens, on="file_id")
        .filter(pl.col("_word").str.to_uppercase().str.contains(pl.col("token"), literal=True))
        .select("_pos")
        .unique()
        .with_columns(pl.lit(True).alias("_hit"))
    )
    cleaned = (
        words.join(hits, on="_pos", how="left")
        .sort("_pos")
        .group_by("_row", maintain_order=True)
        .agg(
            pl.when(pl.col("_hit").fill_null(False))
            .then(pl.lit(REDACTED))
            .otherwise(pl.col("_word"))
            .str.join(" ")
            .alias("value")
        )
        .sort("_row")["value"]
    )
    expr = pl.col("value")
    for pattern in TEXT_PATTERNS.values():
        expr = expr.str.replace_all(pattern, REDACTED)
    return pl.DataFrame({"value": cleaned}).select(expr)["value"]


def text_rows(
    el: pl.DataFrame, store: Store, *, mode: str = "clean"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split the Text Values of content items off ``el``, cleaned: ``(rest, R rows)``.

    ``el`` is the plan's element frame after the covered rows are dropped; the
    returned rows have the plan's columns (``new_value`` the cleaned text, or
    :data:`REDACTED` for every non-empty text when ``mode`` is ``"remove"``).
    """
    is_text = content_text()
    texts = el.filter(is_text & pl.col("value").is_not_null())
    rest = el.filter(~(is_text & pl.col("value").is_not_null()))
    empty = pl.DataFrame(
        schema={"file_id": pl.Int64, "path": pl.String, "tag": pl.String, "keyword": pl.String,
                "vr": pl.String, "action": pl.String, "new_value": pl.String, "rule": pl.String}
    )  # fmt: skip
    if texts.height == 0:
        return rest, empty
    if mode == "remove":
        cleaned = texts.with_columns(pl.lit(REDACTED).alias("new_value"))
    else:
        tokens = identity_words(store, texts["file_id"].unique())
        cleaned = texts.with_columns(clean_text(texts, tokens).alias("new_value"))
    changed = cleaned.filter(pl.col("new_value") != pl.col("value"))
    rows = changed.select(
        "file_id", "path", "tag", "keyword", "vr",
        pl.lit("R").alias("action"), "new_value", pl.lit(RULE).alias("rule"),
    )  # fmt: skip
    return rest, rows
