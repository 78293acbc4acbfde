"""PHI-free messages: reasons from exceptions, masked third-party warnings.

Gantry's own errors name keywords, tags and limits, never values.  Two
things need help to keep that promise:

- an unexpected exception (``TypeError``, ``ValueError`` from pydicom or
  numpy) carries text that may quote a value; :func:`reason_for` turns any
  exception into a reason that names its kind and what to do, and keeps
  the text only of Gantry's own errors;
- third-party warnings (pydicom's ``Invalid value for VR UI: '1.2.3...'``)
  quote values; :func:`capture_warnings` records them in the ``gantry`` log
  with every quoted value, UID and path masked, instead of letting them
  reach stderr.

Examples
--------
>>> mask("Invalid value for VR UI: '1.2.826.0.1.3680043' in /data/DOE^JANE/x.dcm")
"Invalid value for VR UI: '<masked>' in <path>"
>>> mask("UID 1.2.826.0.1.3680043.2 in syntax 1.2.840.10008.1.2.4.50")
'UID <uid> in syntax 1.2.840.10008.1.2.4.50'
>>> reason_for(ValueError("could not convert string to float: 'ANON_000016'"))
'an internal step failed (ValueError); the instance was not written: report this with the run id'
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Final

__all__ = ["LOG", "capture_warnings", "log_warnings", "mask", "reason_for"]

#: The logger third-party warnings go to (masked); silent unless configured.
LOG: Final = logging.getLogger("gantry")
LOG.addHandler(logging.NullHandler())

# a quote opens where no word character precedes it and closes where none follows, so
# a value's own apostrophe ('O'BRIEN') stays inside and the wording's ("element's") opens none
_QUOTED: Final = re.compile(r"\bb'.*?'(?!\w)|(?<!\w)'.*?'(?!\w)|\"[^\"]*\"", re.DOTALL)
_UID: Final = re.compile(r"\b\d+(?:\.\d+){2,}\b")
_PATH: Final = re.compile(r"(?<![\w:/.<])(?:[A-Za-z]:)?(?:[\\/][^\s'\"\\/:]+){2,}[\\/]?")


def mask(text: str) -> str:
    """`text` with quoted values, UIDs and file paths replaced by placeholders."""
    text = _QUOTED.sub("'<masked>'", text)
    text = _PATH.sub("<path>", text)
    return _UID.sub(_uid, text)


def _uid(match: re.Match[str]) -> str:
    # the standard's own UIDs (transfer syntaxes, SOP classes) identify no one
    return match.group() if match.group().startswith("1.2.840.10008.") else "<uid>"


class _MaskingFilter(logging.Filter):
    """Mask the values pydicom's own log records quote (it logs what it warns)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask(record.getMessage())
        record.args = None
        return True


_PYDICOM_LOG = logging.getLogger("pydicom")
if not any(isinstance(f, _MaskingFilter) for f in _PYDICOM_LOG.filters):
    _PYDICOM_LOG.addFilter(_MaskingFilter())


@contextmanager
def capture_warnings(*, log: bool = True) -> Iterator[list[str]]:
    """Record warnings raised inside the block into the ``gantry`` log, masked.

    Yields the list of masked log lines, ``"Category: text"`` (filled when the
    block ends).  With ``log=False`` nothing is logged: a worker process hands
    the lines back to its caller, which logs them (:func:`log_warnings`) where
    the command line counts them.

    Examples
    --------
    >>> with capture_warnings() as seen:
    ...     warnings.warn("Invalid value for VR UI: '1.2.840.99.1'")
    >>> seen
    ["UserWarning: Invalid value for VR UI: '<masked>'"]
    """
    seen: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield seen
        finally:
            for item in caught:
                seen.append(f"{item.category.__name__}: {mask(str(item.message))}")
            if log:
                log_warnings(seen)


def log_warnings(lines: Iterable[str]) -> None:
    """Log warning lines from :func:`capture_warnings` to the ``gantry`` log (masked again)."""
    for line in lines:
        LOG.warning("%s", mask(line))


def reason_for(exc: BaseException) -> str:
    """A reason a user can act on, with no value, UID or path in it.

    Gantry's own errors (and errors whose class sets ``safe_message``) keep
    their message, masked once more for safety; an ``OSError`` keeps its
    system message without the file name; anything else names only its kind.
    """
    from gantry.errors import GantryError

    if isinstance(exc, GantryError) or getattr(exc, "safe_message", False):
        return f"{type(exc).__name__}: {mask(str(exc))}"
    if isinstance(exc, MemoryError):
        return "ran out of memory; export this instance with fewer workers"
    if isinstance(exc, OSError):
        what = exc.strerror or type(exc).__name__
        return f"reading the source or writing the output failed: {what}"
    return (
        f"an internal step failed ({type(exc).__name__}); the instance was not written: "
        "report this with the run id"
    )
