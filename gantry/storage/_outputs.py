"""Tables, reports and maps written to a URL: made locally, then published object by object.

Every writer of a local file or folder (``to_parquet``, the audit report, the
compliance report, the re-identification maps) becomes a writer to object
storage through :func:`publish_output`: it runs into a private temporary folder
(mode ``0o700``, removed afterwards), and each file it made is published whole
(:meth:`Storage.publish <gantry.storage.Storage.publish>`): a reader never sees
a partial object.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from gantry.errors import ConfigError
from gantry.storage._fs import open_storage

__all__ = ["publish_output", "split_url"]


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
) -> list[str]:
    """Run ``write(local)`` in a private temporary folder, then publish what it made next to ``url``.

    ``local`` stands for ``url`` (same name); every file ``write`` leaves in its
    folder is published under ``url``'s parent, each whole, those named in
    ``last`` (relative names) after the others, so whoever sees them sees the
    rest.  When ``local`` is a folder, objects under ``url`` it no longer holds
    (a previous run's partitions) are removed once the new ones are published.

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
        stale: set[str] = set()
        if local.is_dir():
            stale = {f"{name}/{o.rel}" for o in open_storage(url, storage_options).list()}
        for rel in made:
            storage.publish(Path(tmp, rel), rel)
    for rel in sorted(stale - set(made)):
        storage.remove(rel)
    return [storage.url(rel) for rel in made]
