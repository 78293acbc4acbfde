"""The OCR engine interface: :class:`TextBox`, :class:`OcrEngine`, :func:`get_engine`.

An engine reads one display image (``uint8``, ``(rows, cols)`` or ``(rows, cols, 3)``)
and returns the text boxes it found, in pixel coordinates of that image.  Two
engines ship: ``"rapidocr"`` (PP-OCR models run by ONNX Runtime; the models are
inside the PyPI wheel, so nothing is fetched at run time) and ``"tesseract"``
(the Debian ``tesseract-ocr`` program through ``pytesseract``).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import hashlib
import os
import shutil
from typing import Any, Final, Protocol, runtime_checkable

import numpy as np

from gantry.errors import ConfigError, MissingDependencyError

__all__ = ["ENGINES", "OcrEngine", "TextBox", "available_engines", "get_engine"]

#: Engine names, the default first.
ENGINES: Final = ("rapidocr", "tesseract")

TESSERACT_INSTALL: Final = "apt-get install -y tesseract-ocr; pip install 'gantry[ocr]'"


@dataclasses.dataclass(frozen=True)
class TextBox:
    """One piece of text found in an image: rows ``[r1, r2)`` × columns ``[c1, c2)``.

    Examples
    --------
    >>> b = TextBox(10, 22, 5, 60, 0.93, "DOE JOHN")
    >>> b.height, b.width
    (12, 55)
    >>> b.padded(4, 100, 50)
    TextBox(r1=6, r2=26, c1=1, c2=50, confidence=0.93, text='DOE JOHN')
    """

    r1: int
    r2: int
    c1: int
    c2: int
    confidence: float
    text: str

    @property
    def height(self) -> int:
        return self.r2 - self.r1

    @property
    def width(self) -> int:
        return self.c2 - self.c1

    def padded(self, pad: int, rows: int, cols: int) -> TextBox:
        """This box grown by ``pad`` pixels on each side, clipped to the image."""
        return dataclasses.replace(
            self,
            r1=max(0, self.r1 - pad),
            r2=min(rows, self.r2 + pad),
            c1=max(0, self.c1 - pad),
            c2=min(cols, self.c2 + pad),
        )

    def as_zone(self) -> tuple[int, int, int, int]:
        """``(r1, r2, c1, c2)``, the order of :class:`gantry.pixels.Zone`."""
        return (self.r1, self.r2, self.c1, self.c2)


@runtime_checkable
class OcrEngine(Protocol):
    """What every engine provides."""

    name: str

    def read(self, image: np.ndarray) -> list[TextBox]:
        """Text boxes in ``image`` (``uint8``, grey ``(r, c)`` or RGB ``(r, c, 3)``)."""
        ...


def _box_of(points: Any, rows: int, cols: int) -> tuple[int, int, int, int]:
    pts = np.asarray(points, dtype=float).reshape(-1, 2)  # (x, y) corners
    c1, r1 = np.floor(pts.min(axis=0)).astype(int)
    c2, r2 = np.ceil(pts.max(axis=0)).astype(int)
    return max(0, int(r1)), min(rows, int(r2)), max(0, int(c1)), min(cols, int(c2))


class RapidOcrEngine:
    """PP-OCR detection and recognition through ``rapidocr_onnxruntime`` (models in the wheel).

    The detector reads the whole image at its own size (text 10 px high is lost
    when it is shrunk); the recogniser reads only the detected boxes, in one batch
    per image, and remembers what it read: a line drawn identically on the next
    frame of a cine is not recognised again.

    Parameters
    ----------
    min_confidence : float
        Boxes whose recognition score is below this are dropped.
    threads : int, optional
        ONNX Runtime threads per model (default ``$GANTRY_OCR_THREADS``, else 1:
        parallel scans run one engine per worker process).  Above 1, idle threads
        sleep instead of spinning, so a busy machine does not pay for them.
    """

    name = "rapidocr"

    def __init__(self, *, min_confidence: float = 0.5, threads: int | None = None) -> None:
        from gantry._deps import require

        module = require("rapidocr_onnxruntime", extra="ocr")
        self.threads = threads if threads is not None else ocr_threads()
        self._ocr = module.RapidOCR(
            # the angle classifier is for rotated document text; burned-in text is upright
            use_cls=False,
            # detect at the image's own size (the default upsamples to 736 px minimum),
            # shrinking only images larger than 1024 px
            det_limit_type="max",
            det_limit_side_len=1024,
            text_score=min_confidence,
            intra_op_num_threads=self.threads,
            inter_op_num_threads=1,
        )
        if self.threads > 1:
            _sleeping_threads(self._ocr.text_det.infer, self.threads)
            _sleeping_threads(self._ocr.text_rec.session, self.threads)
        self.min_confidence = min_confidence
        self._read: collections.OrderedDict[bytes, tuple[str, float]] = collections.OrderedDict()

    def read(self, image: np.ndarray) -> list[TextBox]:
        # rapidocr's own pipeline (RapidOCR.__call__) without the angle classifier,
        # with remembered recognitions
        ocr = self._ocr
        img = _as_bgr(image)
        rows, cols = img.shape[:2]
        work, ratio_h, ratio_w = ocr.preprocess(img)  # only sides over 2000 or under 30 px
        record: dict[str, Any] = {"preprocess": {"ratio_h": ratio_h, "ratio_w": ratio_w}}
        work, record = ocr.maybe_add_letterbox(work, record)  # very flat images get a margin
        found, _ = ocr.auto_text_det(work)
        if found is None or len(found) == 0:
            return []
        texts = self._recognise(ocr.get_crop_img_list(work, found))
        corners = ocr._get_origin_points(found, record, rows, cols)
        out = []
        for points, (text, score) in zip(corners, texts, strict=True):
            if score < self.min_confidence or not _meaningful(text):
                continue
            r1, r2, c1, c2 = _box_of(points, rows, cols)
            if r2 > r1 and c2 > c1:
                out.append(TextBox(r1, r2, c1, c2, round(score, 4), text.strip()))
        return out

    def _recognise(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        """``(text, score)`` of each crop; crops read before come from memory."""
        keys = [_digest(c) for c in crops]
        todo = {k: c for k, c in zip(keys, crops, strict=True) if k not in self._read}
        if todo:
            got, _ = self._ocr.text_rec(list(todo.values()))
            for k, (text, score) in zip(todo, got, strict=True):
                self._read[k] = (str(text), float(score))
                if len(self._read) > _REMEMBERED:
                    self._read.popitem(last=False)
        return [self._read[k] for k in keys]


#: Crops whose recognition an engine remembers.
_REMEMBERED: Final = 2048


def _digest(crop: np.ndarray) -> bytes:
    shape = np.asarray(crop.shape, dtype=np.int64).tobytes()
    return hashlib.blake2b(shape + crop.tobytes(), digest_size=16).digest()


def ocr_threads() -> int:
    """ONNX Runtime threads per engine: ``$GANTRY_OCR_THREADS``, else 1.

    Examples
    --------
    >>> import os
    >>> os.environ.pop("GANTRY_OCR_THREADS", None) and None
    >>> ocr_threads()
    1
    """
    value = os.environ.get("GANTRY_OCR_THREADS", "").strip()
    return max(1, int(value)) if value.lstrip("-").isdigit() else 1


def _sleeping_threads(wrapper: Any, threads: int) -> None:
    """Rebuild the ONNX session of a rapidocr model wrapper with ``threads`` threads that
    sleep when idle (ONNX Runtime's default spins them, burning a shared core)."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    old = wrapper.session
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    wrapper.session = ort.InferenceSession(
        old._model_path, sess_options=opts, providers=["CPUExecutionProvider"]
    )


class TesseractEngine:
    """Tesseract through ``pytesseract``; words are grouped into lines.

    Parameters
    ----------
    min_confidence : float
        Lines whose best word's confidence (0–1) is below this are dropped; a kept
        line's box spans all its words.
    """

    name = "tesseract"

    def __init__(self, *, min_confidence: float = 0.5) -> None:
        from gantry._deps import require

        self._pt = require("pytesseract", extra="ocr")
        if shutil.which("tesseract") is None:
            raise MissingDependencyError("tesseract", extra="ocr", install=TESSERACT_INSTALL)
        # the program's OpenMP threads spin on every core unless told otherwise
        os.environ.setdefault("OMP_THREAD_LIMIT", str(ocr_threads()))
        self.min_confidence = min_confidence

    def read(self, image: np.ndarray) -> list[TextBox]:
        from PIL import Image

        pt = self._pt
        # sparse text (burned-in labels scattered over an image): page segmentation mode 11
        data = pt.image_to_data(
            Image.fromarray(_upsampled(image)), config="--psm 11", output_type=pt.Output.DICT
        )
        lines: dict[tuple[int, int, int], list[int]] = {}
        for i, word in enumerate(data["text"]):
            if not str(word).strip() or float(data["conf"][i]) < 0:
                continue  # (a line is kept below only when it holds real characters)
            key = (data["block_num"][i], data["par_num"][i], data["line_num"][i])
            lines.setdefault(key, []).append(i)
        out = []
        for idx in lines.values():
            # a line is text when its best word is read confidently; its box spans every
            # word (a doubtful word in a name is still part of the name)
            conf = max(float(data["conf"][i]) for i in idx) / 100
            if conf < self.min_confidence:
                continue
            r1 = min(data["top"][i] for i in idx) // _SCALE
            c1 = min(data["left"][i] for i in idx) // _SCALE
            r2 = -(-max(data["top"][i] + data["height"][i] for i in idx) // _SCALE)
            c2 = -(-max(data["left"][i] + data["width"][i] for i in idx) // _SCALE)
            text = " ".join(str(data["text"][i]).strip() for i in idx)
            if not _meaningful(text):
                continue
            out.append(TextBox(r1, r2, c1, c2, round(conf, 4), text))
        return out


# Tesseract reads small text (under ~20 px) poorly: it sees the image at twice the size.
_SCALE: Final = 2


def _upsampled(image: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(image, _SCALE, axis=0), _SCALE, axis=1)


def _meaningful(text: str) -> bool:
    """At least two letters or digits: single marks and specks are not text worth a box."""
    return sum(ch.isalnum() for ch in text) >= 2


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise ValueError(f"`image` must be uint8, got {image.dtype}")
    if image.ndim == 2:
        return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
    return np.ascontiguousarray(image[:, :, ::-1])


_FACTORIES: Final[dict[str, Any]] = {"rapidocr": RapidOcrEngine, "tesseract": TesseractEngine}


@functools.lru_cache(maxsize=8)
def get_engine(name: str = "rapidocr", *, min_confidence: float = 0.5) -> OcrEngine:
    """The engine called ``name`` (loaded once per process and cached).

    Raises
    ------
    ConfigError
        ``name`` is neither an engine nor a pixel-detector plugin (``docs/plugins.md``).
    PluginError
        The pixel-detector plugin ``name`` failed to load or to build.
    MissingDependencyError
        The engine's package (``pip install 'gantry[ocr]'``) or program is missing.

    Examples
    --------
    >>> get_engine("easyocr")
    Traceback (most recent call last):
    ...
    gantry.errors.ConfigError: `engine` must be one of 'rapidocr', 'tesseract', got 'easyocr'
    """
    if name in _FACTORIES:
        engine: OcrEngine = _FACTORIES[name](min_confidence=min_confidence)
        return engine
    return _plugin_engine(name, min_confidence)


def _plugin_engine(name: str, min_confidence: float) -> OcrEngine:
    """A pixel-detector plugin (``gantry.pixel_detectors`` entry point) built as an engine."""
    from gantry.errors import PluginError
    from gantry.plugins import GROUPS, PixelDetector, PluginKind, discover, load_plugin

    kind = PluginKind.PIXEL_DETECTOR
    if name not in {p.name for p in discover(kind)}:
        names = (*ENGINES, *(p.name for p in discover(kind)))
        raise ConfigError("engine", expected=_one_of(names), got=name)
    factory = load_plugin(kind, name)
    try:
        engine = factory(min_confidence=min_confidence)
    except Exception as exc:  # the plugin's own code
        raise PluginError(
            name, GROUPS[kind], f"could not be built ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(engine, PixelDetector):
        raise PluginError(
            name, GROUPS[kind], f"expected PixelDetector, got {type(engine).__name__}"
        )
    return engine


def _one_of(names: tuple[str, ...]) -> str:
    return "one of " + ", ".join(repr(n) for n in names)


def available_engines() -> list[str]:
    """Engines that load on this machine (their packages and programs are installed)."""
    found = []
    for name in ENGINES:
        try:
            get_engine(name)
        except MissingDependencyError:
            continue
        found.append(name)
    return found
