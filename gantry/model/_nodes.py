"""Patient ▸ Study ▸ Series ▸ Instance: thin views over index rows.

A node holds its model, the index view it came from and a group number (or, for
an instance, a row). Attributes come from the index columns with the session's
edits laid over them; an instance reads its file only for :meth:`Instance.dataset`
and :attr:`Instance.pixel_array`.
"""

from __future__ import annotations

import json
import re
import warnings
from typing import TYPE_CHECKING, Any, ClassVar, cast

import numpy as np
import polars as pl

from gantry.errors import CodecError, ConfigError
from gantry.model._collection import Collection
from gantry.model._editor import Editor
from gantry.model._edits import PixelEdit
from gantry.model._index import KEY_COLUMNS, IndexView, Level
from gantry.model._keys import ElementKey, decode_value, resolve_key
from gantry.model._sidecar import BlobRef

if TYPE_CHECKING:
    from pydicom.dataset import Dataset


__all__ = ["Instance", "Node", "Patient", "Series", "Study"]

_ITEM_CHILD = re.compile(r"\[(\d+)\]\.([0-9A-F]{8})")


class _Attr:
    """A typed attribute read from the index (with edits applied)."""

    __slots__ = ("doc", "keyword", "tag")

    def __init__(self, keyword: str, doc: str = "") -> None:
        self.keyword = keyword
        self.tag = resolve_key(keyword).tag
        self.doc = doc or f"``{keyword}`` (None when absent)."

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj._attr(self.keyword, self.tag)


def _edited(edit: Any) -> Any:
    return None if edit.op == "delete" else decode_value(edit.vr, edit.value)


class _Editable:
    """Edit verbs shared by every level; subclasses provide ``_model`` and ``file_ids``."""

    __slots__ = ()
    _model: Editor

    @property
    def file_ids(self) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def set(self, key: Any, value: Any, *, vr: str | None = None) -> int:
        """Set element ``key`` (keyword or tag) to ``value``; returns the instances edited.

        The value is checked against the element's VR now; it is persisted by
        :meth:`~gantry.Session.save`. A private tag needs ``vr``.
        """
        return self._model.set_element(self.file_ids, key, value, vr=vr)

    def delete(self, key: Any) -> int:
        """Delete element ``key`` (it reads as absent; export leaves it out)."""
        return self._model.delete_element(self.file_ids, key)

    def revert(self, key: Any) -> int:
        """Drop the edits of element ``key``: it reads as indexed again."""
        return self._model.revert_element(self.file_ids, key)

    def exclude(self, reason: str) -> int:
        """Soft-delete: keep in the index, leave out of exports. Undo with :meth:`restore`."""
        return self._model.exclude(self.file_ids, reason)

    def restore(self) -> int:
        """Undo :meth:`exclude`."""
        return self._model.restore(self.file_ids)


class Node(_Editable):
    """A patient, study or series: a group of index rows."""

    __slots__ = ("__weakref__", "_index", "_model", "_view")
    level: ClassVar[Level]

    def __init__(self, model: Editor, view: IndexView, index: int) -> None:
        self._model = model
        self._view = view
        self._index = index

    @property
    def key(self) -> Any:
        """The indexed key (``PatientID``, ``StudyInstanceUID`` or ``SeriesInstanceUID``)."""
        col = self._view.keys[KEY_COLUMNS[self.level]]
        return col[int(self._view.starts[self.level][self._index])]

    @property
    def _row_range(self) -> tuple[int, int]:
        s = self._view.starts[self.level]
        return int(s[self._index]), int(s[self._index + 1])

    @property
    def file_ids(self) -> np.ndarray:
        """``file_id`` of every instance below."""
        lo, hi = self._row_range
        return self._view.file_ids[lo:hi]

    @property
    def instances(self) -> Collection[Instance]:
        """Every instance below, in tree order."""
        lo, hi = self._row_range
        return Collection(self._model, self._view, "instance", range(lo, hi), Instance)

    def _first(self) -> Instance:
        return Instance(self._model, self._view, self._row_range[0])

    def _attr(self, keyword: str, tag: str) -> Any:
        return self._first()._attr(keyword, tag)

    def get(self, key: Any, default: Any = None) -> Any:
        """Element ``key`` of the first instance (see :meth:`Instance.get`)."""
        return self._first().get(key, default)

    def __getitem__(self, key: Any) -> Any:
        return self._first()[key]

    def to_polars(self) -> pl.DataFrame:
        """The ``instances`` rows below (indexed values)."""
        lo, hi = self._row_range
        return self._view.rows_frame(np.arange(lo, hi))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Node)
            and type(other) is type(self)
            and other._view is self._view
            and other._index == self._index
        )

    def __hash__(self) -> int:
        return hash((self.level, id(self._view), self._index))

    def __repr__(self) -> str:
        lo, hi = self._row_range
        return f"<{type(self).__name__} #{self._index} ({hi - lo} instances)>"


class Patient(Node):
    """One patient (rows sharing a ``PatientID``)."""

    __slots__ = ()
    level: ClassVar[Level] = "patient"

    patient_id = _Attr("PatientID")
    patient_name = _Attr("PatientName")
    patient_birth_date = _Attr("PatientBirthDate", "``PatientBirthDate`` as a date.")
    patient_sex = _Attr("PatientSex")

    @property
    def studies(self) -> Collection[Study]:
        """The patient's studies (by date)."""
        lo, hi = self._view.child_range("patient", self._index)
        return Collection(self._model, self._view, "study", range(lo, hi), Study)


class Study(Node):
    """One study of one patient."""

    __slots__ = ()
    level: ClassVar[Level] = "study"

    study_instance_uid = _Attr("StudyInstanceUID")
    study_date = _Attr("StudyDate", "``StudyDate`` as a date.")
    study_time = _Attr("StudyTime")
    study_description = _Attr("StudyDescription")
    accession_number = _Attr("AccessionNumber")
    study_id = _Attr("StudyID")
    patient_id = _Attr("PatientID")

    @property
    def series(self) -> Collection[Series]:
        """The study's series (by series number)."""
        lo, hi = self._view.child_range("study", self._index)
        return Collection(self._model, self._view, "series", range(lo, hi), Series)

    @property
    def patient(self) -> Patient:
        return Patient(self._model, self._view, self._view.parent("study", self._index))


class Series(Node):
    """One series of one study."""

    __slots__ = ()
    level: ClassVar[Level] = "series"

    series_instance_uid = _Attr("SeriesInstanceUID")
    series_number = _Attr("SeriesNumber")
    series_description = _Attr("SeriesDescription")
    modality = _Attr("Modality")
    body_part_examined = _Attr("BodyPartExamined")
    manufacturer = _Attr("Manufacturer")
    manufacturer_model_name = _Attr("ManufacturerModelName")
    study_instance_uid = _Attr("StudyInstanceUID")

    @property
    def study(self) -> Study:
        return Study(self._model, self._view, self._view.parent("series", self._index))

    @property
    def patient(self) -> Patient:
        return self.study.patient


class Instance(_Editable):
    """One DICOM instance: an index row, its elements, header and pixels on demand.

    Pixels are decoded on first access of :attr:`pixel_array` and cached on this
    object only (collections do not keep their items), so iterating many
    instances holds one image at a time; :meth:`unload_pixel_data` frees it
    earlier. Arrays handed out are read-only: assign a new array to
    :attr:`pixel_array` to edit pixels.
    """

    __slots__ = ("__weakref__", "_elements", "_fid", "_model", "_pixels", "_row", "_view")
    level: ClassVar[Level] = "instance"

    def __init__(self, model: Editor, view: IndexView, row: int) -> None:
        self._model = model
        self._view = view
        self._row = row
        self._fid = int(view.file_ids[row])
        self._pixels: np.ndarray | None = None
        self._elements: pl.DataFrame | None = None

    # -- identity and links ------------------------------------------------------------------

    @property
    def file_id(self) -> int:
        return self._fid

    @property
    def file_ids(self) -> np.ndarray:
        return np.array([self._fid], dtype=np.int64)

    @property
    def file_path(self) -> str:
        """The original file (never modified)."""
        return cast(str, self._index_value("file_path"))

    @property
    def transfer_syntax(self) -> str | None:
        return cast("str | None", self._index_value("transfer_syntax"))

    @property
    def file_size(self) -> int | None:
        return cast("int | None", self._index_value("file_size"))

    @property
    def series(self) -> Series:
        return Series(self._model, self._view, self._view.parent("instance", self._row))

    @property
    def study(self) -> Study:
        return self.series.study

    @property
    def patient(self) -> Patient:
        return self.series.study.patient

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Instance) and other._fid == self._fid

    def __hash__(self) -> int:
        return hash(("instance", self._fid))

    def __repr__(self) -> str:
        return f"<Instance file_id={self._fid} {self.modality} {self.rows}x{self.columns}>"

    # -- attributes ----------------------------------------------------------------------------

    patient_id = _Attr("PatientID")
    patient_name = _Attr("PatientName")
    patient_birth_date = _Attr("PatientBirthDate", "``PatientBirthDate`` as a date.")
    patient_sex = _Attr("PatientSex")
    study_instance_uid = _Attr("StudyInstanceUID")
    study_date = _Attr("StudyDate", "``StudyDate`` as a date.")
    study_description = _Attr("StudyDescription")
    accession_number = _Attr("AccessionNumber")
    series_instance_uid = _Attr("SeriesInstanceUID")
    series_number = _Attr("SeriesNumber")
    series_description = _Attr("SeriesDescription")
    modality = _Attr("Modality")
    manufacturer = _Attr("Manufacturer")
    manufacturer_model_name = _Attr("ManufacturerModelName")
    institution_name = _Attr("InstitutionName")
    sop_instance_uid = _Attr("SOPInstanceUID")
    sop_class_uid = _Attr("SOPClassUID")
    instance_number = _Attr("InstanceNumber")
    rows = _Attr("Rows")
    columns = _Attr("Columns")
    number_of_frames = _Attr("NumberOfFrames")
    samples_per_pixel = _Attr("SamplesPerPixel")
    bits_allocated = _Attr("BitsAllocated")
    photometric_interpretation = _Attr("PhotometricInterpretation")
    pixel_spacing = _Attr("PixelSpacing", "``PixelSpacing`` as a list of two floats.")
    slice_thickness = _Attr("SliceThickness")
    burned_in_annotation = _Attr("BurnedInAnnotation")

    def _index_value(self, column: str) -> Any:
        values = self._view.values(column)
        return None if values is None else values[self._row]

    def _attr(self, keyword: str, tag: str) -> Any:
        log = self._model.log
        if log.active:
            edit = log.lookup(self._fid, tag)
            if edit is not None:
                return _edited(edit)
        values = self._view.values(keyword)
        return None if values is None else values[self._row]

    def get(self, key: Any, default: Any = None) -> Any:
        """Element ``key`` — a keyword, a tag or an element path — or ``default``.

        Top-level attributes come from the ``instances`` columns (typed), with edits
        applied; anything else (sequences, private and bulk elements, nested paths)
        from the ``elements`` rows (values as text, a sequence as a list of dicts).
        """
        k = resolve_key(key)
        if k.top_level:
            edit = self._model.log.lookup(self._fid, k.tag)
            if edit is not None:
                value = _edited(edit)
                return default if edit.op == "delete" else value
            if k.keyword is not None and self._view.has(k.keyword):
                value = self._index_value(k.keyword)
                if value is None and self._view.has(k.keyword + "__raw"):
                    value = self._index_value(k.keyword + "__raw")
                return default if value is None else value
        return self._from_elements(k, default)

    def __getitem__(self, key: Any) -> Any:
        missing = object()
        value = self.get(key, missing)
        if value is missing:
            raise KeyError(key)
        return value

    def __contains__(self, key: Any) -> bool:
        return self.get(key, None) is not None

    # -- elements ------------------------------------------------------------------------------

    def elements(self) -> pl.DataFrame:
        """This instance's ``elements`` rows (indexed values, sorted by path)."""
        if self._elements is None:
            self._elements = self._view.elements_of(self._row)
        return self._elements

    def _from_elements(self, k: ElementKey, default: Any) -> Any:
        rows = self.elements()
        hit = rows.filter(pl.col("path") == k.path)
        if hit.height == 0:
            return default
        row = hit.row(0, named=True)
        if row["vr"] == "SQ":
            below = rows.filter(pl.col("path").str.starts_with(k.path + "[")).to_dicts()
            return _items(below, k.path, int(row["length"] or 0))
        if row["value"] is None and row["value_hash"] is not None:
            return default
        return row["value"] if row["value"] is not None else default

    def element_vr(self, k: ElementKey) -> str | None:
        """The VR of element ``k`` as indexed, or None when absent."""
        hit = self.elements().filter(pl.col("path") == k.path)
        return hit["vr"][0] if hit.height else None

    # -- edits ---------------------------------------------------------------------------------

    @property
    def excluded(self) -> bool:
        """Whether the instance is soft-deleted (pending or saved)."""
        return self._model.log.exclusion(self._fid)[0]

    @property
    def exclusion_reason(self) -> str | None:
        return self._model.log.exclusion(self._fid)[1]

    @property
    def edits(self) -> dict[str, Any]:
        """Effective element edits by keyword (or tag): the new value, None when deleted."""
        return {
            (e.keyword or e.tag): _edited(e) for e in self._model.log.effective(self._fid).values()
        }

    def dataset(self, *, pixels: bool = False) -> Dataset:
        """The full pydicom header read from the file now, with this session's edits applied.

        With ``pixels=True`` the pixel data is read too, and an edited pixel array
        replaces it (stored uncompressed).
        """
        import pydicom
        from pydicom.dataelem import DataElement

        ds = pydicom.dcmread(self.file_path, stop_before_pixels=not pixels)
        for tag_text, edit in self._model.log.effective(self._fid).items():
            tag = int(tag_text, 16)
            if edit.op == "delete":
                if tag in ds:
                    del ds[tag]
                continue
            value = json.loads(edit.value) if edit.value is not None else None
            if tag in ds:
                ds[tag].value = value
            else:
                ds[tag] = DataElement(tag, edit.vr or "UN", value)
        if pixels:
            state = self._model.log.pixel_state(self._fid)
            if isinstance(state, BlobRef) or (
                isinstance(state, PixelEdit) and state.array is not None
            ):
                arr = self.pixel_array
                photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
                if photometric.startswith("YBR") and arr.ndim >= 3 and arr.shape[-1] == 3:
                    photometric = "RGB"
                bits = int(ds.get("BitsStored", arr.dtype.itemsize * 8))
                ds.set_pixel_data(
                    np.ascontiguousarray(arr), photometric, bits, generate_instance_uid=False
                )
        return ds

    # -- pixels --------------------------------------------------------------------------------

    @property
    def pixel_array(self) -> np.ndarray:
        """The pixels, decoded on first access (or the edited array), read-only.

        The same values, shape and dtype as pydicom's ``Dataset.pixel_array`` with its
        defaults (YCbCr converted to RGB, signed values sign-extended, planar data
        interleaved), in native byte order.  pydicom decodes where it has a plugin;
        elsewhere :func:`gantry.pixels.decode` gives the same output.  For the stored
        samples without colour conversion use :meth:`stored_pixels`.

        Raises
        ------
        CodecError
            The pixel data cannot be decoded (names the file and transfer syntax).
        """
        cached = self._pixels
        if cached is not None:
            return cached
        state = self._model.log.pixel_state(self._fid)
        if isinstance(state, PixelEdit) and state.array is not None:
            return state.array
        if isinstance(state, BlobRef):
            arr = self._model.log.read_saved_pixels(state)
        else:
            arr = self._decode()
        self._pixels = arr
        return arr

    @pixel_array.setter
    def pixel_array(self, array: Any) -> None:
        new = np.asarray(array)
        shape, dtype = self._pixel_layout()
        if new.shape != shape or new.dtype != dtype:
            raise ConfigError(
                "pixel_array",
                expected=f"an array of shape {shape} and dtype {dtype}",
                got=f"shape {new.shape}, dtype {new.dtype}",
            )
        stored = np.array(new, copy=True, order="C")
        stored.flags.writeable = False
        self._model.log.record_pixels(self._fid, stored)
        self._pixels = stored

    def revert_pixels(self) -> None:
        """Drop the pixel edit: the pixels read as in the original file again."""
        self._model.log.record_pixels(self._fid, None)
        self._pixels = None

    def unload_pixel_data(self) -> None:
        """Release the cached pixels (they are decoded again on next access)."""
        self._pixels = None

    def _pixel_layout(self) -> tuple[tuple[int, ...], np.dtype[Any]]:
        try:
            current = self.pixel_array
            return current.shape, current.dtype
        except CodecError:
            return self._layout_from_index()

    def _layout_from_index(self) -> tuple[tuple[int, ...], np.dtype[Any]]:
        """Shape and dtype described by the header, for pixels that cannot be decoded."""
        rows, cols = self.rows, self.columns
        if rows is None or cols is None:
            raise ConfigError("pixel_array", expected="an instance with Rows and Columns", got=None)
        frames = int(self.number_of_frames or 1)
        samples = int(self.samples_per_pixel or 1)
        bits = int(self.bits_allocated or 16)
        signed = bool(self._index_value("PixelRepresentation") or 0)
        kind = "i" if signed else "u"
        dtype = np.dtype(f"{kind}{max(1, bits // 8)}")
        shape: tuple[int, ...] = (int(rows), int(cols))
        if samples > 1:
            shape = (*shape, samples)
        if frames > 1:
            shape = (frames, *shape)
        return shape, dtype

    def stored_pixels(self) -> np.ndarray:
        """The pixels as stored in the file, without colour conversion (not cached).

        :attr:`pixel_array` gives what pydicom's ``Dataset.pixel_array`` gives, which
        converts YCbCr to RGB; this gives the stored samples instead (pydicom's
        ``as_rgb=False``), e.g. ``YBR_FULL_422`` JPEG stays in YCbCr.  Pixel edits are
        not applied.

        Raises
        ------
        CodecError
            The pixel data cannot be decoded without converting its colours.
        """
        return self._decode(stored=True)

    def _decode(self, *, stored: bool = False) -> np.ndarray:
        """pydicom's decoding where pydicom can; otherwise gantry's (same output)."""
        import pydicom

        path, ts = self.file_path, self.transfer_syntax
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom warns about oddities it reads anyway
                ds = pydicom.dcmread(path)
        except OSError:
            raise
        except Exception as exc:
            raise CodecError(path, ts, f"could not be read ({type(exc).__name__})") from exc
        if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            raise CodecError(path, ts, "is absent")
        arr = _pydicom_pixels(ds, as_rgb=not stored)
        if arr is None:
            photometric = str(ds.get("PhotometricInterpretation", ""))
            if stored and photometric in ("YBR_FULL", "YBR_FULL_422"):
                raise CodecError(
                    path, ts, "stored values need a pydicom decoder for this transfer syntax"
                )
            decode = _decoder()
            if decode is None:
                raise CodecError(path, ts, "has no decoder here (install imagecodecs)")
            try:
                arr = decode(ds, path=path)
            except CodecError:
                raise
            except Exception as exc:
                raise CodecError(
                    path, ts, f"could not be decoded ({type(exc).__name__}: {_short(exc)})"
                ) from exc
        arr = np.asarray(arr)
        if not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        arr.flags.writeable = False
        return arr


def _pydicom_pixels(ds: Any, *, as_rgb: bool) -> np.ndarray | None:
    """``ds.pixel_array`` (with pydicom's defaults, or ``as_rgb=False``); None when it cannot."""
    from pydicom.pixels import pixel_array

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about oddities it decodes anyway
            if as_rgb:
                return np.asarray(ds.pixel_array)
            return np.asarray(pixel_array(ds, as_rgb=False))
    except Exception:  # no plugin here, or data pydicom refuses: gantry decodes it
        return None


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text[:200]


_DECODE: Any = None


def _decoder() -> Any:
    """``gantry.pixels.decode`` when available (imagecodecs), else None (pydicom)."""
    global _DECODE
    if _DECODE is None:
        try:
            from gantry.pixels import decode
        except ImportError:
            return None
        _DECODE = decode
    return _DECODE


def _items(rows: list[dict[str, Any]], prefix: str, count: int) -> list[dict[str, Any]]:
    """Rebuild the items of sequence ``prefix`` from its element rows (nested as lists)."""
    items: list[dict[str, Any]] = [{} for _ in range(count)]
    n = len(prefix)
    for r in rows:
        m = _ITEM_CHILD.fullmatch(r["path"][n:])
        if m is None:
            continue  # deeper: handled by the child sequence
        i = int(m.group(1))
        while len(items) <= i:
            items.append({})
        name = r["keyword"] or r["tag"]
        if r["vr"] == "SQ":
            below = [x for x in rows if x["path"].startswith(r["path"] + "[")]
            items[i][name] = _items(below, r["path"], int(r["length"] or 0))
        else:
            items[i][name] = r["value"]
    return items
