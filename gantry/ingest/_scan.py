"""Find the files under the paths a user gives to ``ingest``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path


def iter_files(paths: Iterable[str | os.PathLike[str]]) -> Iterator[str]:
    """Yield the absolute path of every regular file under ``paths`` (recursively), once.

    Hidden folders (``.git``, ``.gantry`` stores) are skipped; hidden files are not.
    Symbolic links to files are followed, links to folders are not (no cycles).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "a").mkdir(); _ = (root / "a" / "x.dcm").write_bytes(b"")
    >>> [pathlib.Path(p).name for p in iter_files([root])]
    ['x.dcm']
    """
    seen: set[str] = set()
    for p in paths:
        top = os.path.abspath(os.fspath(p))
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
