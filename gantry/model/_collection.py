"""Collections of patients, studies, series or instances: lazy sequences over the index."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

import numpy as np
import polars as pl

from gantry.model._editor import Editor
from gantry.model._index import KEY_COLUMNS, IndexView, Level

N = TypeVar("N")

__all__ = ["Collection"]

_DESCRIBE: dict[Level, tuple[str, ...]] = {
    "patient": ("PatientName", "PatientBirthDate", "PatientSex"),
    "study": ("PatientID", "StudyDate", "StudyDescription", "AccessionNumber"),
    "series": (
        "PatientID",
        "StudyInstanceUID",
        "Modality",
        "SeriesNumber",
        "SeriesDescription",
    ),
}


class Collection(Generic[N]):
    """A sequence of patients, studies, series or instances.

    Items are made when asked for and not kept, so iterating a large collection
    holds one item (and its pixels) at a time. Index it by position, by slice, or
    by its key (``PatientID``, ``StudyInstanceUID``, ``SeriesInstanceUID`` or
    ``SOPInstanceUID``).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from gantry import Session
    >>> from gantry.testing._synthetic_index import make_synthetic_index
    >>> s = Session(pathlib.Path(tempfile.mkdtemp()) / "s.db")
    >>> make_synthetic_index(s.store, 600, patients=2)
    >>> len(s.patients), len(s.patients[0].studies)
    (2, 1)
    >>> s.patients.to_polars().select("n_studies", "n_series", "n_instances")
    shape: (2, 3)
    ┌───────────┬──────────┬─────────────┐
    │ n_studies ┆ n_series ┆ n_instances │
    │ ---       ┆ ---      ┆ ---         │
    │ i64       ┆ i64      ┆ i64         │
    ╞═══════════╪══════════╪═════════════╡
    │ 1         ┆ 3        ┆ 300         │
    │ 1         ┆ 3        ┆ 300         │
    └───────────┴──────────┴─────────────┘
    >>> s.close()
    """

    __slots__ = ("_cls", "_idx", "_level", "_model", "_view")

    def __init__(
        self,
        model: Editor,
        view: IndexView,
        level: Level,
        idx: range | np.ndarray,
        cls: Callable[[Editor, IndexView, int], N],
    ) -> None:
        self._model = model
        self._view = view
        self._level = level
        self._idx = idx
        self._cls = cls

    def __len__(self) -> int:
        return len(self._idx)

    def __iter__(self) -> Iterator[N]:
        make, model, view = self._cls, self._model, self._view
        for i in self._idx:
            yield make(model, view, int(i))

    @overload
    def __getitem__(self, key: int | str) -> N: ...
    @overload
    def __getitem__(self, key: slice) -> Collection[N]: ...

    def __getitem__(self, key: int | str | slice) -> N | Collection[N]:
        if isinstance(key, slice):
            return Collection(self._model, self._view, self._level, self._idx[key], self._cls)
        if isinstance(key, int | np.integer):
            return self._cls(self._model, self._view, int(self._idx[int(key)]))
        found = self._find(key)
        if found is None:
            raise KeyError(f"no {self._level} with {KEY_COLUMNS[self._level]} {key!r} here")
        return self._cls(self._model, self._view, found)

    def get(self, key: str, default: N | None = None) -> N | None:
        """The item whose key is ``key``, or ``default``."""
        found = self._find(key)
        return default if found is None else self._cls(self._model, self._view, found)

    def __contains__(self, key: object) -> bool:
        return self._find(key) is not None

    def _find(self, key: Any) -> int | None:
        view = self._view
        if self._level == "instance":
            row = view.row_of_sop(key)
            if row is not None and self._holds(row):
                return row
            return self._scan_for(key)
        g = view.group_of_key(self._level, key)
        if g is not None and self._holds(g):
            return g
        return self._scan_for(key)

    def _holds(self, i: int) -> bool:
        idx = self._idx
        if isinstance(idx, range):
            return i in idx
        pos = int(np.searchsorted(idx, i))
        return pos < len(idx) and int(idx[pos]) == i

    def _scan_for(self, key: Any) -> int | None:
        """Linear search (a key repeated in messy data, the first copy being elsewhere)."""
        keys = self.keys()
        try:
            return int(self._idx[keys.index(key)])
        except ValueError:
            return None

    def keys(self) -> list[Any]:
        """The key of every item, in order."""
        view = self._view
        if self._level == "instance":
            col = view.keys["SOPInstanceUID"]
            return col.gather(pl.Series(np.asarray(self._idx, dtype=np.int64))).to_list()
        keys = view.group_keys(self._level)
        return keys.gather(pl.Series(np.asarray(self._idx, dtype=np.int64))).to_list()

    # -- rows ------------------------------------------------------------------------------

    @property
    def rows(self) -> np.ndarray:
        """Rows (tree order) of every instance in the collection."""
        idx = self._idx
        if self._level == "instance":
            return np.asarray(idx, dtype=np.int64)
        if isinstance(idx, range) and idx.step == 1:
            lo, hi = self._view.row_range(self._level, idx.start, idx.stop) if len(idx) else (0, 0)
            return np.arange(lo, hi, dtype=np.int64)
        s = self._view.starts[self._level]
        parts = [np.arange(s[i], s[i + 1]) for i in idx]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    @property
    def file_ids(self) -> np.ndarray:
        """``file_id`` of every instance in the collection."""
        ids: np.ndarray = self._view.file_ids[self.rows]
        return ids

    def to_polars(self) -> pl.DataFrame:
        """One row per item: instance rows of ``instances``, or a summary per group.

        Values are the indexed ones (edits are not applied here).
        """
        view, level = self._view, self._level
        if level == "instance":
            return view.rows_frame(self.rows)
        g = np.asarray(self._idx, dtype=np.int64)
        starts = view.starts[level]
        first = pl.Series(starts[g])
        cols: dict[str, Any] = {KEY_COLUMNS[level]: view.group_keys(level).gather(pl.Series(g))}
        for name in _DESCRIBE[level]:
            s = view.series(name)
            cols[name] = s.gather(first) if s is not None else pl.repeat(None, len(g), eager=True)
        lo, hi = starts[g], starts[g + 1]
        below: dict[Level, tuple[Level, ...]] = {
            "patient": ("study", "series"),
            "study": ("series",),
            "series": (),
        }
        for down in below[level]:
            bounds = view.starts[down]
            name = "n_studies" if down == "study" else "n_series"
            cols[name] = (
                np.searchsorted(bounds, hi, "left") - np.searchsorted(bounds, lo, "left")
            ).astype(np.int64)
        cols["n_instances"] = (hi - lo).astype(np.int64)
        return pl.DataFrame(cols)

    # -- bulk edits ------------------------------------------------------------------------

    def set(self, key: Any, value: Any, *, vr: str | None = None) -> int:
        """Set element ``key`` to ``value`` in every instance; returns how many."""
        return self._model.set_element(self.file_ids, key, value, vr=vr)

    def delete(self, key: Any) -> int:
        """Delete element ``key`` from every instance (on export)."""
        return self._model.delete_element(self.file_ids, key)

    def revert(self, key: Any) -> int:
        """Drop every edit of element ``key`` (back to the indexed value)."""
        return self._model.revert_element(self.file_ids, key)

    def exclude(self, reason: str) -> int:
        """Soft-delete every instance (kept in the index, left out of exports)."""
        return self._model.exclude(self.file_ids, reason)

    def restore(self) -> int:
        """Undo :meth:`exclude` for every instance."""
        return self._model.restore(self.file_ids)

    def __repr__(self) -> str:
        noun = {"patient": "patients", "study": "studies", "series": "series"}.get(
            self._level, "instances"
        )
        return f"<Collection of {len(self)} {noun}>"
