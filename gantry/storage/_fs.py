"""One small file-system interface for everything Gantry reads and writes as files.

:class:`Storage` is the whole interface: list what is under a root, read a byte
range, read or write a whole file, publish a finished local file, remove one.
:class:`LocalStorage` is a folder on this machine; :class:`FsspecStorage` is any
`fsspec <https://filesystem-spec.readthedocs.io>`_ URL (``s3://``, ``gs://``,
``az://``, ``memory://``...).  A plugin adds another back end by implementing
the same methods.

Credentials and endpoints never come from Gantry's files: each SDK reads its own
environment and config chain (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``STORAGE_EMULATOR_HOST``, ``AZURE_STORAGE_CONNECTION_STRING``...), or the caller
passes ``storage_options``, which are handed to fsspec as they are and never stored.

Examples
--------
>>> import tempfile
>>> root = tempfile.mkdtemp()
>>> local = open_storage(root)
>>> local.write_atomic("a/b.txt", b"hello")
>>> [(o.rel, o.size) for o in local.list()], local.read_range(local.url("a/b.txt"), 1, 3)
([('a/b.txt', 5)], b'el')
>>> mem = open_storage("memory://gantry-doctest")
>>> mem.write_atomic("x.bin", b"12345")
>>> mem.info("x.bin").size, mem.read("x.bin")
(5, b'12345')
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from gantry._deps import require
from gantry.errors import StorageError

__all__ = [
    "FsspecStorage",
    "LocalStorage",
    "ObjectInfo",
    "Storage",
    "is_url",
    "open_storage",
    "storage_error",
]

#: URL scheme -> the extra that installs its fsspec back end
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs", "az": "azure", "abfs": "azure"}
_MODULES = {"s3": "s3fs", "gcs": "gcsfs", "azure": "adlfs"}


def is_url(path: object) -> bool:
    """Whether ``path`` names object storage (a URL with a scheme other than ``file``).

    Examples
    --------
    >>> is_url("s3://bucket/prefix"), is_url("/data/ct"), is_url("file:///data")
    (True, False, False)
    """
    text = os.fspath(path) if isinstance(path, str | os.PathLike) else ""
    scheme, sep, _ = str(text).partition("://")
    return bool(sep) and scheme.isidentifier() and scheme.lower() != "file"


@dataclass(frozen=True)
class ObjectInfo:
    """One file (object) under a storage root.

    Attributes
    ----------
    path : the full URL (or absolute local path) - what tables record as ``file_path``
    rel : the path relative to the root, ``/``-separated
    size : bytes
    etag : the object's ETag (local files: ``"<size>-<mtime_ns>"``); changes with the content
    version : the object's version id or generation, when the store keeps versions
    mtime : last modification, seconds since the epoch
    """

    path: str
    rel: str
    size: int
    etag: str | None
    version: str | None
    mtime: float | None


@runtime_checkable
class Storage(Protocol):
    """What Gantry needs of a place that holds files.

    Every ``rel`` is relative to the root and ``/``-separated; ``path`` is a full
    URL or local path as returned by :meth:`url` or :meth:`list`.  Writes are
    atomic: a reader sees a whole file or none (never a partial one).
    """

    root: str

    def url(self, rel: str) -> str:
        """The full URL (or path) of ``rel``."""
        ...

    def list(self) -> list[ObjectInfo]:
        """Every file under the root, sorted by ``rel``."""
        ...

    def info(self, rel: str) -> ObjectInfo | None:
        """One file's details, or None when it does not exist."""
        ...

    def read_range(self, path: str, start: int, end: int, version: str | None = None) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of the file at ``path``."""
        ...

    def read(self, rel: str) -> bytes:
        """The whole file ``rel``."""
        ...

    def write_atomic(self, rel: str, data: bytes) -> None:
        """Write ``data`` to ``rel``, visible only once complete."""
        ...

    def publish(self, local: str | os.PathLike[str], rel: str) -> None:
        """Copy the finished local file ``local`` to ``rel``, visible only once complete."""
        ...

    def remove(self, rel: str) -> None:
        """Delete ``rel`` if it exists."""
        ...


class LocalStorage:
    """A folder on this machine (writes go through a hidden temporary name and a rename)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = str(Path(root).expanduser().absolute())

    def url(self, rel: str) -> str:
        return os.path.join(self.root, *rel.split("/"))

    def _info(self, path: str, rel: str) -> ObjectInfo:
        st = os.stat(path)
        return ObjectInfo(
            path, rel, st.st_size, f"{st.st_size}-{st.st_mtime_ns}", None, st.st_mtime
        )

    def list(self) -> list[ObjectInfo]:
        out = []
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in files:
                path = os.path.join(folder, name)
                out.append(self._info(path, os.path.relpath(path, self.root).replace(os.sep, "/")))
        return sorted(out, key=lambda o: o.rel)

    def info(self, rel: str) -> ObjectInfo | None:
        try:
            return self._info(self.url(rel), rel)
        except FileNotFoundError:
            return None

    def read_range(self, path: str, start: int, end: int, version: str | None = None) -> bytes:
        with open(path, "rb") as fh:
            fh.seek(start)
            return fh.read(max(0, end - start))

    def read(self, rel: str) -> bytes:
        return Path(self.url(rel)).read_bytes()

    def _tmp(self, target: str) -> str:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        return os.path.join(os.path.dirname(target), f".{uuid.uuid4().hex}.tmp")

    def write_atomic(self, rel: str, data: bytes) -> None:
        target = self.url(rel)
        tmp = self._tmp(target)
        try:
            Path(tmp).write_bytes(data)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def publish(self, local: str | os.PathLike[str], rel: str) -> None:
        target = self.url(rel)
        tmp = self._tmp(target)
        try:
            shutil.copyfile(local, tmp)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def remove(self, rel: str) -> None:
        Path(self.url(rel)).unlink(missing_ok=True)


class FsspecStorage:
    """Object storage through fsspec (``s3://``, ``gs://``, ``az://``, ``memory://``, ...).

    Object stores publish an object only when its upload completes (a single PUT,
    or a multipart upload's final request), so :meth:`publish` and
    :meth:`write_atomic` never leave a partial object visible.
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        scheme = url.split("://", 1)[0].lower()
        extra = EXTRAS.get(scheme)
        if extra is not None:
            require(_MODULES[extra], extra=extra)
        fsspec = require("fsspec", extra=extra or "s3")
        self.scheme = scheme
        self.options = dict(storage_options or {})
        # a fresh instance: fsspec's cache would keep an endpoint or key the
        # environment no longer names
        self.fs = fsspec.filesystem(scheme, skip_instance_cache=True, **self.options)
        self.root = url.rstrip("/")
        self._base = self.fs._strip_protocol(self.root).rstrip("/")

    def _key(self, rel: str) -> str:
        return f"{self._base}/{rel}" if rel else self._base

    def url(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def _object(self, key: str, meta: Mapping[str, Any]) -> ObjectInfo:
        rel = key[len(self._base) + 1 :] if key.startswith(self._base + "/") else key
        size = int(meta.get("size") or meta.get("Size") or 0)
        mtime = _timestamp(
            _first_raw(meta, "LastModified", "last_modified", "updated", "mtime", "created")
        )
        return ObjectInfo(
            path=self.url(rel),
            rel=rel,
            size=size,
            # a back end without ETags: size and modification time stand in
            etag=_first(meta, "ETag", "etag", "md5Hash") or f"{size}-{mtime}",
            version=_first(meta, "VersionId", "version_id", "generation"),
            mtime=mtime,
        )

    def list(self) -> list[ObjectInfo]:
        try:
            self.fs.invalidate_cache()
            found = self.fs.find(self._base, detail=True)
        except Exception as exc:
            raise storage_error(self.root, exc) from exc
        out = [
            self._object(key, meta)
            for key, meta in found.items()
            if meta.get("type", "file") != "directory" and not key.endswith("/")
        ]
        if not out:
            self._check_bucket()
        return sorted(out, key=lambda o: o.rel)

    def _check_bucket(self) -> None:
        """Raise when the bucket itself is missing (an empty listing says nothing)."""
        bucket = self._base.split("/", 1)[0]
        try:
            self.fs.ls(bucket, refresh=True)  # raises where `exists` would answer False
        except FileNotFoundError:
            raise StorageError(self.root, "the bucket does not exist") from None
        except Exception as exc:
            raise storage_error(self.root, exc) from exc

    def info(self, rel: str) -> ObjectInfo | None:
        key = self._key(rel)
        try:
            self.fs.invalidate_cache(key)
            return self._object(key, self.fs.info(key))
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise storage_error(self.url(rel), exc) from exc

    def read_range(self, path: str, start: int, end: int, version: str | None = None) -> bytes:
        key = self.fs._strip_protocol(path)
        kwargs = {"version_id": version} if version and self.scheme in ("s3", "s3a") else {}
        try:
            return bytes(self.fs.cat_file(key, start=start, end=end, **kwargs))
        except Exception as exc:
            raise storage_error(path, exc) from exc

    def read(self, rel: str) -> bytes:
        try:
            return bytes(self.fs.cat_file(self._key(rel)))
        except Exception as exc:
            raise storage_error(self.url(rel), exc) from exc

    def write_atomic(self, rel: str, data: bytes) -> None:
        try:
            self.fs.pipe_file(self._key(rel), data)
        except Exception as exc:
            raise storage_error(self.url(rel), exc) from exc

    def publish(self, local: str | os.PathLike[str], rel: str) -> None:
        try:
            self.fs.put_file(os.fspath(local), self._key(rel))
        except Exception as exc:
            raise storage_error(self.url(rel), exc) from exc

    def remove(self, rel: str) -> None:
        try:
            self.fs.rm_file(self._key(rel))
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise storage_error(self.url(rel), exc) from exc


_SDK_ENV = ("AWS_", "GOOGLE_", "STORAGE_EMULATOR", "GCSFS_", "AZURE_")
_OPEN: dict[tuple[str, str, str], FsspecStorage] = {}


def sdk_environment() -> dict[str, str]:
    """The SDK environment variables (``AWS_*``, ``AZURE_*``…) of this process, to hand a worker.

    Worker processes come from a fork server started earlier, whose environment
    may be older than the caller's (a notebook that sets ``AWS_ENDPOINT_URL``
    after its first export): tasks carry the caller's snapshot and apply it
    with :func:`apply_sdk_environment`.

    Examples
    --------
    >>> os.environ["AWS_REGION"] = "eu-west-1"
    >>> sdk_environment()["AWS_REGION"]
    'eu-west-1'
    >>> del os.environ["AWS_REGION"]
    """
    return {k: v for k, v in os.environ.items() if k.startswith(_SDK_ENV)}


def apply_sdk_environment(env: Mapping[str, str] | None) -> None:
    """Make this process's SDK environment equal to `env` (None: leave it as it is)."""
    if env is None:
        return
    for key in [k for k in os.environ if k.startswith(_SDK_ENV) and k not in env]:
        del os.environ[key]
    os.environ.update(env)


def open_storage(
    root: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None
) -> LocalStorage | FsspecStorage:
    """The :class:`Storage` for a folder or URL.

    A URL's client is made once per process for the same root, options and SDK
    environment (making one costs a session and a connection pool), and made
    again when any of them changes.

    Examples
    --------
    >>> type(open_storage("/tmp")).__name__, type(open_storage("memory://x")).__name__
    ('LocalStorage', 'FsspecStorage')
    """
    if is_url(root):
        env = sorted((k, v) for k, v in os.environ.items() if k.startswith(_SDK_ENV))
        key = (str(root), repr(sorted((storage_options or {}).items())), repr(env))
        found = _OPEN.get(key)
        if found is None:
            found = _OPEN[key] = FsspecStorage(str(root), storage_options)
        return found
    text = os.fspath(root)
    return LocalStorage(text[len("file://") :] if text.startswith("file://") else text)


# "503" as a status, not inside a port or key such as ``127.0.0.1:45031`` or ``IMG503``.
_HTTP_503 = re.compile(r"(?<![\w:./-])503(?![\w.])")


def storage_error(url: str, exc: BaseException) -> StorageError:
    """A :class:`StorageError` saying plainly what the SDK's exception means.

    Examples
    --------
    >>> storage_error("s3://b/k", PermissionError("The AWS Access Key Id ...")).reason
    'access denied: check the credentials (the SDK environment or `storage_options`)'
    """
    if isinstance(exc, StorageError):
        return exc
    text = f"{type(exc).__name__} {exc}".lower()
    if isinstance(exc, PermissionError) or any(
        w in text for w in ("accessdenied", "access denied", "invalidaccesskeyid", "signature")
    ):
        reason = "access denied: check the credentials (the SDK environment or `storage_options`)"
    elif "nosuchbucket" in text or "bucket does not exist" in text:
        reason = "the bucket does not exist"
    elif isinstance(exc, FileNotFoundError):
        reason = "no such object (or no such bucket)"
    elif any(w in text for w in ("slowdown", "throttl", "too many requests")) or _HTTP_503.search(
        text
    ):
        reason = "the service kept throttling requests (HTTP 503) past the retries; run again"
    elif any(w in text for w in ("connect", "timeout", "timed out", "endpoint")):
        reason = f"the endpoint did not answer ({type(exc).__name__}); run again to resume"
    else:
        reason = f"the request failed ({type(exc).__name__})"
    return StorageError(url, reason)


def _first_raw(meta: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if meta.get(key) not in (None, ""):
            return meta[key]
    return None


def _first(meta: Mapping[str, Any], *keys: str) -> str | None:
    value = _first_raw(meta, *keys)
    return None if value is None else str(value).strip('"')


def _timestamp(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None
