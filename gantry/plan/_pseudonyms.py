"""Stable per-patient pseudonyms, persisted so numbers never change between runs."""

from __future__ import annotations

import re

import polars as pl

from gantry.plan._keys import keyed_hex
from gantry.store import Store

PSEUDONYM_TABLE = "pseudonyms"
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def patient_key(secret: bytes, patient_id: str) -> str:
    """The keyed hash standing for a PatientID wherever Gantry must not store it."""
    return keyed_hex(secret, "patient", patient_id, 32)


def assign_pseudonyms(
    store: Store,
    patient_ids: list[str],
    *,
    template: str,
    method: str,
    width: int = 4,
    persist: bool = True,
) -> pl.DataFrame:
    """Return ``PatientID, patient_key, number, pseudonym`` for ``patient_ids``.

    Numbers already given (table ``pseudonyms``, keyed by the HMAC of the PatientID,
    never the ID itself) are kept; new patients get the next numbers in the order of
    their keys, so adding patients later never renumbers earlier ones.  With
    ``persist=False`` (a dry run) the new numbers are not recorded.
    """
    secret = store.secret
    ids = sorted(set(patient_ids))
    frame = pl.DataFrame(
        {"PatientID": ids, "patient_key": [patient_key(secret, p) for p in ids]},
        schema={"PatientID": pl.String, "patient_key": pl.String},
    )
    known = (
        store.sql(f"SELECT patient_key, number FROM {PSEUDONYM_TABLE}")
        if PSEUDONYM_TABLE in store.table_names()
        else pl.DataFrame(schema={"patient_key": pl.String, "number": pl.Int64})
    )
    merged = frame.join(known, on="patient_key", how="left")
    new = merged.filter(pl.col("number").is_null()).sort("patient_key")
    start = int(known["number"].max() or 0) + 1 if known.height else 1
    new = new.with_columns(pl.int_range(start, start + new.height, dtype=pl.Int64).alias("number"))
    merged = pl.concat([merged.filter(pl.col("number").is_not_null()), new]).sort("number")
    if new.height and persist:
        all_known = pl.concat([known, new.select("patient_key", "number")]).unique("patient_key")
        store.write_table(PSEUDONYM_TABLE, all_known.sort("number"))
    if method == "hash":
        template = template.replace("{id}", "{hash}")
    pseudonyms = [
        render_template(template, number=n, key=k, width=width)
        for n, k in zip(merged["number"].to_list(), merged["patient_key"].to_list(), strict=True)
    ]
    return merged.with_columns(pl.Series("pseudonym", pseudonyms, dtype=pl.String))


def render_template(template: str, *, number: int, key: str, width: int = 4) -> str:
    """Fill ``{id}`` (zero-padded number) and ``{hash}`` (keyed hash) in ``template``.

    Examples
    --------
    >>> render_template("ANON_{id}", number=7, key="ab12cd34ef")
    'ANON_0007'
    >>> render_template("P-{hash}", number=7, key="ab12cd34ef56")
    'P-ab12cd34ef56'
    """
    return template.replace("{id}", str(number).zfill(width)).replace("{hash}", key[:12])


def safe_path_component(text: str) -> str:
    """A file-system-safe name (no separators, no ``..``) for a pseudonymised value.

    Examples
    --------
    >>> safe_path_component("../ANON 1")
    '_ANON_1'
    """
    cleaned = _SAFE.sub("_", text).strip(".") or "_"
    return cleaned.replace("..", "__")
