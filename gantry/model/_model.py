"""The object model of one session: the index tree, the edit log, save and compact."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import duckdb
import numpy as np
import polars as pl

from gantry.errors import ConfigError, QueryError
from gantry.model._collection import Collection
from gantry.model._edits import EditLog, SaveResult, compact, save
from gantry.model._index import IndexView
from gantry.model._keys import INSTANCE_TAG, ElementKey, dictionary_vr, encode_value, resolve_key
from gantry.model._nodes import Instance, Patient
from gantry.store import Store

__all__ = ["Model"]

Where = str | pl.Expr | None


class Model:
    """Navigation, edits and persistence of edits for one :class:`~gantry.store.Store`.

    :class:`~gantry.Session` holds one and delegates to it. The tree is rebuilt
    when the set of ingested shards changes; edits live in one :class:`EditLog`.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.log = EditLog(store)
        self._view: IndexView | None = None
        self._view_stamp = -1
        self._view_lock = threading.Lock()
        self._save_lock = threading.Lock()

    # -- navigation ------------------------------------------------------------------------

    def view(self) -> IndexView:
        """The current tree (rebuilt when ingest committed new batches)."""
        view = self._view
        stamp = self._batches_stamp()
        if view is not None and stamp == self._view_stamp and time.time() - stamp / 1e9 > 2:
            return view  # the batches folder did not change (and not within its mtime tick)
        files = self.store.files_of("instances")
        if view is None or view.files != files:
            with self._view_lock:
                view = self._view
                if view is None or view.files != files:
                    view = self._view = IndexView(self.store)
        self._view_stamp = stamp
        return view

    def _batches_stamp(self) -> int:
        if self.store.remote is not None:  # no folder to watch: compare the listed parts
            return time.time_ns()
        try:
            return os.stat(self.store.layout.batches).st_mtime_ns
        except FileNotFoundError:
            return 0

    @property
    def patients(self) -> Collection[Patient]:
        view = self.view()
        return Collection(self, view, "patient", range(len(view.starts["patient"]) - 1), Patient)

    def instance(self, sop_instance_uid: str) -> Instance:
        view = self.view()
        row = view.row_of_sop(sop_instance_uid)
        if row is None:
            raise KeyError("no instance with this SOPInstanceUID in the index")
        return Instance(self, view, row)

    def instances(self, where: Where = None) -> Collection[Instance]:
        fids = self._where(where)  # a bad expression fails here, before anything else
        view = self.view()
        if fids is None:
            return Collection(self, view, "instance", range(view.n), Instance)
        rows = np.flatnonzero(np.isin(view.file_ids, fids))
        return Collection(self, view, "instance", rows, Instance)

    def _where(self, where: Where) -> np.ndarray | None:
        """``file_id`` of the instances matching ``where`` (None: every instance)."""
        if where is None:
            return None
        if isinstance(where, pl.Expr):
            try:
                got = self.store.scan("instances").filter(where).select("file_id").collect()
            except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
                raise QueryError(str(where), str(exc).splitlines()[0]) from exc
            return got["file_id"].to_numpy()
        if not isinstance(where, str):
            raise QueryError(repr(where), "`where` must be a SQL expression or a polars expression")
        query = f"SELECT file_id FROM instances WHERE {where}"
        try:
            statements = duckdb.extract_statements(query)
        except duckdb.Error as exc:
            raise QueryError(where, str(exc).splitlines()[0]) from exc
        if len(statements) != 1:
            raise QueryError(where, "`where` must be one expression, not several statements")
        return self.store.sql(query)["file_id"].to_numpy()

    # -- edits -----------------------------------------------------------------------------

    def _editable_key(self, key: Any) -> ElementKey:
        k = resolve_key(key)
        name = k.keyword or k.tag
        if not k.top_level:
            raise ConfigError(name, expected="a top-level element", got=k.path,
                              hint="nested elements are read-only in the object model")  # fmt: skip
        if k.tag.startswith("0002"):
            raise ConfigError(name, expected="a dataset element", got=k.tag,
                              hint="file meta elements are written by export")  # fmt: skip
        return k

    def _vr(self, k: ElementKey, vr: str | None, fids: np.ndarray) -> str:
        if vr is not None:
            return vr.upper()
        found = dictionary_vr(k.tag)
        if found is None and len(fids) == 1:
            view = self.view()
            rows = np.flatnonzero(view.file_ids == fids[0])
            if len(rows):
                found = Instance(self, view, int(rows[0])).element_vr(k)
        if found is None:
            raise ConfigError(k.tag, expected="a VR for this private or unknown tag",
                              got=None, hint="pass `vr=`, e.g. vr='LO'")  # fmt: skip
        return found

    def set_element(
        self, fids: Iterable[int], key: Any, value: Any, *, vr: str | None = None
    ) -> int:
        ids = np.asarray(list(fids) if not isinstance(fids, np.ndarray) else fids, dtype=np.int64)
        k = self._editable_key(key)
        the_vr = self._vr(k, vr, ids)
        text = encode_value(k, the_vr, value)
        return self.log.record(ids, k.tag, k.keyword, the_vr, "set", text)

    def delete_element(self, fids: Iterable[int], key: Any) -> int:
        k = self._editable_key(key)
        return self.log.record(fids, k.tag, k.keyword, dictionary_vr(k.tag), "delete", None)

    def revert_element(self, fids: Iterable[int], key: Any) -> int:
        k = self._editable_key(key)
        return self.log.record(fids, k.tag, k.keyword, dictionary_vr(k.tag), "revert", None)

    def exclude(self, fids: Iterable[int], reason: str) -> int:
        import json

        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError("reason", expected="a non-empty string", got=reason)
        return self.log.record(fids, INSTANCE_TAG, None, None, "exclude", json.dumps(reason))

    def restore(self, fids: Iterable[int]) -> int:
        return self.log.record(fids, INSTANCE_TAG, None, None, "restore", None)

    def edit(
        self,
        *,
        where: Where,
        set: Mapping[Any, Any] | None = None,
        delete: Iterable[Any] = (),
        vr: Mapping[Any, str] | None = None,
    ) -> int:
        """Edit every instance matching ``where``; returns how many instances matched."""
        fids = self._where(where)
        if fids is None:
            fids = self.view().file_ids
        vrs = {resolve_key(k).tag: v for k, v in (vr or {}).items()}
        planned: list[tuple[ElementKey, str | None, str, str | None]] = []
        for key, value in (set or {}).items():  # check every value before recording any
            k = self._editable_key(key)
            the_vr = self._vr(k, vrs.get(k.tag), np.zeros(0, np.int64))
            planned.append((k, the_vr, "set", encode_value(k, the_vr, value)))
        for key in delete:
            k = self._editable_key(key)
            planned.append((k, dictionary_vr(k.tag), "delete", None))
        for k, planned_vr, op, text in planned:
            self.log.record(fids, k.tag, k.keyword, planned_vr, op, text)
        if not self.store.read_only:  # the audit trail: keywords and counts, never values
            details = {
                "set": [k.keyword or k.tag for k, _, op, _ in planned if op == "set"],
                "delete": [k.keyword or k.tag for k, _, op, _ in planned if op == "delete"],
            }
            with self.store._mutex, self.store.run("edit", details) as counts:
                counts.update({"instances": len(fids), "edits": len(fids) * len(planned)})
        return len(fids)

    @property
    def pending(self) -> int:
        return self.log.pending_count

    # -- persistence -----------------------------------------------------------------------

    def save(self) -> SaveResult:
        return save(self.store, self.log, self._save_lock)

    def compact(self) -> int:
        return compact(self.store, self.log, self._save_lock)
