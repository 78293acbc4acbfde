"""Tables, reports and maps written to a URL: made locally, then published object by object.

Every writer of a local file or folder (``to_parquet``, the audit report, the
compliance report, the re-identification maps) becomes a writer to object
storage through :func:`publish_output`: it runs into a private temporary folder
(mode ``0o700``, removed afterwards), and each file it made is published whole
(:meth:`Storage.publish <gantry.storage.Storage.publish>`): a reader never sees
a partial object.

A folder (a partitioned table) is published as a whole: its files get names
no earlier write used (``<write id>-<name>``), then ``_gantry_manifest.json``
listing them is published (one object: the commit point), and only then are
the files of earlier writes removed.  A reader that goes by the manifest
(:func:`committed_files`) sees the old folder or the new one, never a mix.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from gantry.errors import ConfigError
from gantry.storage._fs import open_storage

__all__ = ["MANIFEST", "committed_files", "publish_output", "split_url"]

MANIFEST = "_gantry_manifest.json"
"""The object naming a published folder's files; published after them."""


def split_url(url: str) -> tuple[str, str]:
    """``(parent, name)`` of an object URL; the bucket alone is refused.

    Examples
    --------
    >>> split_url("s3://bucket/out/cohort.parquet")
    ('s3://bucket/out', 'cohort.parquet')
    >>> split_url("s3://bucket")
    Traceback (most recent call last):
    ...
    gantry.errors.ConfigError: `path` must be a URL with a name under the bucket (s3://bucket/name), got 's3://bucket'
    """
    scheme, _, rest = url.rstrip("/").partition("://")
    bucket, sep, key = rest.partition("/")
    if not sep or not key:
        raise ConfigError(
            "path", expected="a URL with a name under the bucket (s3://bucket/name)", got=url
        )
    parent, _, name = key.rpartition("/")
    return f"{scheme}://{bucket}/{parent}".rstrip("/"), name


def publish_output(
    url: str,
    write: Callable[[Path], object],
    storage_options: Mapping[str, Any] | None = None,
    *,
    last: Iterable[str] = (),
    manifest: bool = False,
) -> list[str]:
    """Run ``write(local)`` in a private temporary folder, then publish what it made next to ``url``.

    ``local`` stands for ``url`` (same name); every file ``write`` leaves in its
    folder is published under ``url``'s parent, each whole, those named in
    ``last`` (relative names) after the others, so whoever sees them sees the
    rest.  When ``local`` is a folder, objects under ``url`` it no longer holds
    are removed once the new ones are published; with ``manifest=True`` (a
    partitioned table) its files are published under fresh names, then its
    :data:`MANIFEST`, and only then are the earlier objects removed
    (see :func:`committed_files`).

    Returns the published URLs, in publishing order.

    Examples
    --------
    >>> out = publish_output(
    ...     "memory://gantry-doctest-out/r/table.csv",
    ...     lambda p: (p.write_text("a,b\\n"), p.with_name("table.csv.json").write_text("{}")),
    ...     last=["table.csv.json"],
    ... )
    >>> out
    ['memory://gantry-doctest-out/r/table.csv', 'memory://gantry-doctest-out/r/table.csv.json']
    >>> open_storage("memory://gantry-doctest-out/r").read("table.csv")
    b'a,b\\n'
    """
    parent, name = split_url(url)
    storage = open_storage(parent, storage_options)
    finals = set(last)
    with TemporaryDirectory(prefix="gantry-out-") as tmp:
        local = Path(tmp) / name
        write(local)
        made = sorted(
            Path(folder, f).relative_to(tmp).as_posix()
            for folder, _, files in os.walk(tmp)
            for f in files
            if not f.startswith(".")
        )
        made.sort(key=lambda rel: rel in finals)  # stable: `last` ones at the end
        if not local.is_dir() or not manifest:
            stale: set[str] = set()
            if local.is_dir():
                stale = {f"{name}/{o.rel}" for o in open_storage(url, storage_options).list()}
            for rel in made:
                storage.publish(Path(tmp, rel), rel)
            for rel in sorted(stale - set(made)):
                storage.remove(rel)
            return [storage.url(rel) for rel in made]
        folder = open_storage(url, storage_options)
        stale = {o.rel for o in folder.list()} - {MANIFEST}
        write_id = uuid.uuid4().hex[:12]
        inside = [r for r in made if r.startswith(f"{name}/")]
        names: list[str] = []  # relative to the folder, as published
        for rel in inside:
            head, _, base = rel[len(name) + 1 :].rpartition("/")
            names.append(f"{head}/{write_id}-{base}".lstrip("/"))
            folder.publish(Path(tmp, rel), names[-1])
        manifest = {"write_id": write_id, "files": names}
        folder.write_atomic(MANIFEST, json.dumps(manifest, indent=1).encode())
        for rel in sorted(stale - set(names)):
            folder.remove(rel)
        rest = [r for r in made if r not in inside]
        for rel in rest:
            storage.publish(Path(tmp, rel), rel)
    return [folder.url(n) for n in names] + [folder.url(MANIFEST)] + [storage.url(r) for r in rest]


def committed_files(url: str, storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """The URLs of the files of a folder published by :func:`publish_output`, by its manifest.

    Raises :class:`~gantry.errors.StorageError` when the folder has no manifest
    (never completely published).

    Examples
    --------
    >>> def table(p):
    ...     (p / "k=1").mkdir(parents=True)
    ...     (p / "k=1" / "part-0.parquet").write_bytes(b"PAR1")
    >>> _ = publish_output("memory://gantry-doctest-folder/cohort", table, manifest=True)
    >>> [u.rsplit("-", 1)[1] for u in committed_files("memory://gantry-doctest-folder/cohort")]
    ['0.parquet']
    """
    from gantry.errors import StorageError

    folder = open_storage(url, storage_options)
    try:
        manifest = json.loads(folder.read(MANIFEST))
    except StorageError as exc:
        if "no such object" not in exc.reason:
            raise
        raise StorageError(url, "no manifest: the folder was never completely published") from None
    return [folder.url(rel) for rel in manifest["files"]]
