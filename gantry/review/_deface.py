"""Defacing results for the review pages: the ``deface`` table and its pictures.

:func:`deface_table` lists every series of the ``deface`` table with the
address of its series page (ordinals, never a UID); :func:`deface_pictures`
renders a series' side views as PNG: before and after the cut for a defaced
series (:meth:`gantry.Session.deface_preview`), and only "before" for a refused
one whose slices can be read, so the reviewer sees what was refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from gantry.session import Session

__all__ = ["deface_pictures", "deface_table", "series_paths"]

_TABLE = "deface"


def series_paths(session: Session, uids: set[str]) -> dict[str, str]:
    """``{SeriesInstanceUID: "/patients/p/studies/s/series/r"}`` for the indexed ``uids``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from gantry import Session
    >>> from gantry.testing import make_instance
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> ds = make_instance(tmp / "d" / "a.dcm")
    >>> with Session(tmp / "s.db") as s:
    ...     _ = s.ingest(tmp / "d", workers=1, progress=False)
    ...     list(series_paths(s, {str(ds.SeriesInstanceUID), "1.2.3"}).values())
    ['/patients/0/studies/0/series/0']
    """
    found: dict[str, str] = {}
    if not uids:
        return found
    for p, patient in enumerate(session.patients):
        for s, study in enumerate(patient.studies):
            for r, key in enumerate(study.series.keys()):
                if key in uids:
                    found[str(key)] = f"/patients/{p}/studies/{s}/series/{r}"
    return found


def deface_table(session: Session, *, series: str | None = None) -> pl.DataFrame:
    """The ``deface`` table with each series' Modality, description, instance count,
    the instances the plan defaces (``planned``) and its page (``path``, None when
    the series is not indexed); empty when nothing was defaced yet.

    ``series``: only that series' row, without ``path`` (its page is known).
    """
    if _TABLE not in session.tables():
        return pl.DataFrame()
    planned = (
        "(SELECT count(DISTINCT p.file_id) FROM plan p JOIN instances j USING (file_id) "
        "WHERE p.action = 'DEFACE' AND j.SeriesInstanceUID = d.SeriesInstanceUID)"
        if "plan" in session.tables()
        else "NULL"
    )
    rows = session.sql(
        "SELECT d.*, i.Modality, i.SeriesDescription, i.instances, "
        f"{planned} AS planned FROM deface d LEFT JOIN ("
        "  SELECT SeriesInstanceUID, any_value(Modality) AS Modality, "
        "  any_value(SeriesDescription) AS SeriesDescription, count(*) AS instances "
        "  FROM instances GROUP BY 1) i USING (SeriesInstanceUID) "
        f"{'WHERE d.SeriesInstanceUID = ? ' if series is not None else ''}"
        "ORDER BY d.status = 'ok', d.computed_at",
        [series] if series is not None else None,
    )
    if series is not None:
        return rows
    paths = series_paths(session, set(rows["SeriesInstanceUID"].to_list()))
    return rows.with_columns(
        pl.col("SeriesInstanceUID").replace_strict(paths, default=None, return_dtype=pl.String)
        .alias("path")
    )  # fmt: skip


def deface_pictures(session: Session, uid: str) -> tuple[bytes | None, bytes | None]:
    """``(before, after)`` PNG side views of a series in the ``deface`` table.

    A defaced (``ok``) series gets both; a refused one only ``before``, when its
    slices can be read and stacked (else ``None``): there is no cut to show.
    """
    status = session.sql(
        "SELECT status FROM deface WHERE SeriesInstanceUID = ? ORDER BY computed_at DESC LIMIT 1",
        [uid],
    )
    if status.height == 0:
        return None, None
    if status.item() == "ok":
        preview = session.deface_preview(uid)
        return preview.before, preview.after
    return _before_only(session, uid), None


def _before_only(session: Session, uid: str) -> bytes | None:
    import imagecodecs
    import numpy as np

    from gantry.deface import load_volume, side_projection
    from gantry.review._thumbs import window

    paths = session.sql("SELECT file_path FROM instances WHERE SeriesInstanceUID = ?", [uid])
    if paths.height == 0:
        return None
    try:
        volume, geometries, *_ = load_volume(paths["file_path"].to_list())
    except Exception:  # the reason it was refused: nothing to draw
        return None
    image: Any = window(side_projection(volume, geometries))
    return bytes(imagecodecs.png_encode(np.ascontiguousarray(image)))
