"""Find the files under the paths a user gives to ``ingest``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from gantry.store._layout import EXPORT_MARKER


def export_folder_of(path: str) -> str | None:
    """The nearest folder at or above ``path`` that holds an export marker, or None.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "out" / "a").mkdir(parents=True); _ = (root / "out" / EXPORT_MARKER).write_text("")
    >>> export_folder_of(str(root / "out" / "a")) == str(root / "out"), export_folder_of(str(root))
    (True, None)
    """
    here = os.path.abspath(path)
    while True:
        if os.path.isfile(os.path.join(here, EXPORT_MARKER)):
            return here
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def iter_files(
    paths: Iterable[str | os.PathLike[str]], *, marked: list[str] | None = None
) -> Iterator[str]:
    """Yield the absolute path of every regular file under ``paths`` (recursively), once.

    Hidden folders (``.git``, ``.gantry`` stores) are skipped; hidden files are not.
    Symbolic links to files are followed, links to folders are not (no cycles).
    Export folders (holding :data:`~gantry.store._layout.EXPORT_MARKER`) are not
    entered: their paths are appended to ``marked`` so the caller can record why.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "a").mkdir(); _ = (root / "a" / "x.dcm").write_bytes(b"")
    >>> [pathlib.Path(p).name for p in iter_files([root])]
    ['x.dcm']
    """
    seen: set[str] = set()
    found_marks: list[str] = marked if marked is not None else []
    for p in paths:
        top = os.path.abspath(os.fspath(p))
        if os.path.exists(top):
            exported = export_folder_of(top if os.path.isdir(top) else os.path.dirname(top))
            if exported is not None:
                if exported not in found_marks:
                    found_marks.append(exported)
                continue
        if os.path.isfile(top):
            if top not in seen:
                seen.add(top)
                yield top
            continue
        if not os.path.isdir(top):
            raise FileNotFoundError(top)
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            if any(e.name == EXPORT_MARKER for e in entries):
                if folder not in found_marks:
                    found_marks.append(folder)
                continue
            subdirs = []
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if not entry.name.startswith(".") and not entry.name.endswith(".gantry"):
                            subdirs.append(entry.path)
                    elif entry.is_file(follow_symlinks=True):
                        if entry.path not in seen:
                            seen.add(entry.path)
                            yield entry.path
                except OSError:
                    continue
            stack.extend(reversed(subdirs))


def count_files(paths: Iterable[str | os.PathLike[str]]) -> int:
    """Number of files :func:`iter_files` yields."""
    return sum(1 for _ in iter_files(paths))


def as_paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Normalise one path or many into a list."""
    if isinstance(paths, str | os.PathLike):
        return [Path(paths)]
    return [Path(p) for p in paths]
