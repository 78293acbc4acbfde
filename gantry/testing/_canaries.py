"""Canary tokens: unique, greppable values planted in identifying elements.

A canary is ``"CNRY"`` followed by 8 upper-case hex digits, derived from the
corpus seed and the place it is planted, so it is deterministic, distinct from
every other canary of the corpus and cannot occur by chance in real content.
Leak tests grep written files for them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

CANARY_PREFIX = "CNRY"
CANARY_RE = re.compile(r"CNRY[0-9A-F]{8}")
CANARY_BYTES_RE = re.compile(rb"CNRY[0-9A-F]{8}")


class CanaryBook:
    """Hands out distinct canary tokens, or plain values when disabled.

    Parameters
    ----------
    seed : int
        Corpus seed; tokens are a pure function of ``(seed, key)``.
    enabled : bool
        When false, :meth:`value` returns the plain value unchanged.

    Examples
    --------
    >>> book = CanaryBook(0, enabled=True)
    >>> tok = book.value("p0.PatientID", "PID-1")
    >>> tok.startswith("CNRY") and len(tok) == 12
    True
    >>> book.value("p0.PatientID", "PID-1") == tok
    True
    >>> CanaryBook(0, enabled=False).value("p0.PatientID", "PID-1")
    'PID-1'
    """

    def __init__(self, seed: int, *, enabled: bool) -> None:
        self.seed = seed
        self.enabled = enabled
        self._by_key: dict[str, str] = {}
        self._taken: set[str] = set()

    def token(self, key: str) -> str:
        """Return the canary token for ``key`` (distinct from all others handed out)."""
        if key in self._by_key:
            return self._by_key[key]
        salt = 0
        while True:
            digest = hashlib.blake2b(
                f"gantry-canary:{self.seed}:{key}:{salt}".encode(), digest_size=4
            ).hexdigest()
            tok = CANARY_PREFIX + digest.upper()
            if tok not in self._taken:
                break
            salt += 1
        self._taken.add(tok)
        self._by_key[key] = tok
        return tok

    def value(self, key: str, plain: str) -> str:
        """Return the token for ``key`` when enabled, else ``plain``."""
        return self.token(key) if self.enabled else plain

    @property
    def tokens(self) -> set[str]:
        """Every token handed out so far."""
        return set(self._taken)


def _texts(value: object) -> Iterator[str]:
    if isinstance(value, bytes | bytearray):
        yield bytes(value).decode("latin-1")
    elif isinstance(value, str | PersonName):
        yield str(value)
    elif isinstance(value, MultiValue | list | tuple):
        for v in value:
            yield from _texts(v)


def _walk(ds: Dataset, prefix: str, found: dict[str, list[str]]) -> None:
    for elem in ds:
        if elem.tag == 0x7FE00010:
            continue
        tag = f"{elem.tag:08X}"
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value or []):
                _walk(item, f"{prefix}{tag}[{i}].", found)
            continue
        for text in _texts(elem.value):
            for tok in CANARY_RE.findall(text):
                paths = found.setdefault(tok, [])
                if prefix + tag not in paths:
                    paths.append(prefix + tag)


def _rank(path: str) -> tuple[bool, int]:
    parts = path.split(".")
    return (any(int(part[:4], 16) % 2 for part in parts), len(parts))


def find_canaries(ds: Dataset) -> dict[str, list[str]]:
    """Map every canary token found in ``ds`` to the element paths holding it.

    Paths follow the element-path contract of ``docs/internals.md``
    (``"00400275[0].00400031"``); the first path is the canonical place the
    token was planted (public before private, shallow before deep), later ones
    are copies (free text, private tags).  Pixel data is not searched.

    Examples
    --------
    >>> from pydicom import Dataset
    >>> ds = Dataset()
    >>> ds.PatientID = "CNRY0123ABCD"
    >>> ds.ImageComments = "id CNRY0123ABCD"
    >>> find_canaries(ds)
    {'CNRY0123ABCD': ['00100020', '00204000']}
    """
    found: dict[str, list[str]] = {}
    _walk(ds, "", found)
    return {tok: sorted(paths, key=_rank) for tok, paths in found.items()}
