"""Gantry's exceptions, all in one place.

Every error Gantry raises on purpose derives from :class:`GantryError`, so a
caller can catch the whole family with one ``except``.  Errors carry fields
(the file, the key, the tag) rather than only text, and **never** carry a
patient's value: messages name keywords, tags, paths or hashed UIDs.

The tree::

    GantryError
    ├── ConfigError (ValueError)         a config / profile mistake, names the key path
    ├── StoreError                       the session store
    │   ├── StoreLockedError             another writer holds the session
    │   ├── StoreNotFoundError (FileNotFoundError)  no session at that path (only ingest creates one)
    │   └── SchemaVersionError           the store was written by an incompatible version
    ├── QueryError (ValueError)          a bad SQL query or WHERE expression
    ├── IngestError                      a file could not be indexed (recorded, never raised mid-batch)
    ├── AuditError                       an audit rule failed
    ├── PlanError                        the remediation plan could not be built
    ├── CodecError                       pixel data could not be decoded or encoded
    ├── RedactionError                   a redaction zone could not be applied or verified
    │   └── DefaceError                  a series cannot be defaced (geometry, no head found)
    ├── ExportError                      an export failed or did not verify
    ├── NetworkError                     a DICOM / DICOMweb peer refused, timed out or failed
    ├── PluginError                      a plugin failed to load or has the wrong type
    ├── StorageError (OSError)           object storage (S3, GCS, Azure) refused or failed a request
    ├── VaultError                       the identity vault
    │   ├── VaultKeyError                missing or wrong key
    │   └── TamperedVaultError           authenticated decryption failed
    └── MissingDependencyError (ImportError)  an optional extra is not installed

Examples
--------
>>> from gantry.errors import ConfigError, GantryError
>>> err = ConfigError("privacy_profile", expected="one of 'basic', 'comprehensive'", got="basci")
>>> isinstance(err, (GantryError, ValueError))
True
>>> str(err)
"`privacy_profile` must be one of 'basic', 'comprehensive', got 'basci'"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "AuditError",
    "CodecError",
    "ConfigError",
    "DefaceError",
    "ExportError",
    "GantryError",
    "IngestError",
    "MissingDependencyError",
    "NetworkError",
    "PlanError",
    "PluginError",
    "QueryError",
    "RedactionError",
    "SchemaVersionError",
    "StorageError",
    "StoreError",
    "StoreLockedError",
    "StoreNotFoundError",
    "TamperedVaultError",
    "VaultError",
    "VaultKeyError",
]


class GantryError(Exception):
    """Base class of every error Gantry raises on purpose."""


class ConfigError(GantryError, ValueError):
    """A configuration or profile mistake.

    Parameters
    ----------
    key : str
        Dotted path of the offending key, e.g. ``phi_tags.0010,0010.action``.
    expected : str
        What was expected there.
    got : object, optional
        What was found (never a patient's value: config values only).
    hint : str, optional
        A suggestion, such as a did-you-mean.
    """

    def __init__(
        self,
        key: str,
        *,
        expected: str,
        got: Any = None,
        hint: str | None = None,
        source: str | Path | None = None,
    ) -> None:
        self.key = key
        self.expected = expected
        self.got = got
        self.hint = hint
        self.source = str(source) if source is not None else None
        msg = f"`{key}` must be {expected}, got {got!r}"
        if hint:
            msg += f" ({hint})"
        if self.source:
            msg += f" [in {self.source}]"
        super().__init__(msg)


class StoreError(GantryError):
    """A problem with the session store."""


class StoreLockedError(StoreError):
    """Another writer holds the session store."""

    def __init__(self, path: str | Path, pid: int | None = None) -> None:
        self.path = str(path)
        self.pid = pid
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(
            f"session `{self.path}` is open for writing by {holder} (a script, a shell "
            "command or a notebook kernel); close it there first, or open it read-only"
        )


class StoreNotFoundError(StoreError, FileNotFoundError):
    """No session store exists at the path, and the verb only reads (only ingest creates one).

    Examples
    --------
    >>> err = StoreNotFoundError("/data/nonexistent.db")
    >>> isinstance(err, (StoreError, FileNotFoundError)), err.path
    (True, '/data/nonexistent.db')
    >>> str(err).split(" (")[0]
    'session `/data/nonexistent.db` must exist, got no such file'

    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        GantryError.__init__(
            self,
            f"session `{self.path}` must exist, got no such file "
            "(only `ingest` creates a session; check `--db`)",
        )

    def __str__(self) -> str:
        return str(self.args[0])


class SchemaVersionError(StoreError):
    """The store's schema version is not one this Gantry can read."""

    def __init__(self, path: str | Path, found: int, supported: int) -> None:
        self.path = str(path)
        self.found = found
        self.supported = supported
        super().__init__(
            f"store `{self.path}` has schema version {found}, this gantry reads version "
            f"{supported}; re-ingest into a new session"
        )


class QueryError(GantryError, ValueError):
    """A SQL query or WHERE expression could not be run."""

    def __init__(self, query: str, reason: str) -> None:
        self.query = query
        self.reason = reason
        super().__init__(f"`query` could not be run, got {query!r}: {reason}")


class IngestError(GantryError):
    """A file could not be indexed (the file is in :attr:`path`, never in the message)."""

    def __init__(self, path: str | Path, reason: str, detail: str = "") -> None:
        self.path = str(path)
        self.reason = reason
        self.detail = detail
        super().__init__(reason + (f" ({detail})" if detail else ""))


class AuditError(GantryError):
    """An audit rule could not be evaluated."""


class PlanError(GantryError):
    """The remediation plan could not be built."""


class CodecError(GantryError):
    """Pixel data could not be decoded or encoded.

    The file is in :attr:`path`, never in the message: folder names often
    carry a patient's name or ID.
    """

    def __init__(self, path: str | Path | None, transfer_syntax: str | None, reason: str) -> None:
        self.path = str(path) if path is not None else None
        self.transfer_syntax = transfer_syntax
        self.reason = reason
        super().__init__(f"pixel data ({transfer_syntax}) {reason}")


class RedactionError(GantryError):
    """A redaction zone could not be applied or verified."""


class DefaceError(RedactionError):
    """A series cannot be defaced: no usable geometry, too few slices, no head found.

    The message is the reason recorded in the ``deface`` table; the series is
    then excluded from export rather than written with its face.
    """


class ExportError(GantryError):
    """An export failed or a written file did not verify."""


class StorageError(GantryError, OSError):
    """Object storage refused or failed a request: a missing bucket, denied credentials, an
    endpoint that stopped answering, throttling that outlasted the retries.

    Parameters
    ----------
    url : str
        The bucket URL or object URL involved (never a patient's value; never a credential).
    reason : str
        What happened, e.g. ``"the bucket does not exist"``.

    Examples
    --------
    >>> err = StorageError("s3://nope/scans", "the bucket does not exist")
    >>> isinstance(err, OSError), str(err)
    (True, 'object storage `s3://nope/scans`: the bucket does not exist')
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        GantryError.__init__(self, f"object storage `{url}`: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.url, self.reason))


class NetworkError(GantryError):
    """A DICOM or DICOMweb peer could not be reached, refused us, or failed a request.

    Parameters
    ----------
    peer : str
        The peer as ``AE@host:port`` or a DICOMweb base URL (never a patient's value).
    reason : str
        What happened, e.g. ``"association rejected (called AE title not recognised)"``.
    """

    def __init__(self, peer: str, reason: str) -> None:
        self.peer = peer
        self.reason = reason
        super().__init__(f"`{peer}`: {reason}")


class VaultError(GantryError):
    """A problem with the identity vault."""


class VaultKeyError(VaultError):
    """The vault key is missing, unreadable or wrong."""


class TamperedVaultError(VaultError):
    """Authenticated decryption failed: the vault was altered or rows were moved."""


class PluginError(GantryError):
    """A plugin (a Python entry point) failed to load, or is not what its kind expects.

    Parameters
    ----------
    name : str
        The entry point's name.
    group : str
        Its entry-point group (``gantry.audit_rules``, ...).
    reason : str
        What went wrong (the exception type and message of an import error, or
        the type expected and found).
    distribution : str or None
        The distribution that declared it.

    Examples
    --------
    >>> err = PluginError("my-rule", "gantry.audit_rules", "expected AuditRule, got int")
    >>> str(err)
    'plugin `my-rule` (gantry.audit_rules) failed: expected AuditRule, got int'
    """

    def __init__(
        self, name: str, group: str, reason: str, *, distribution: str | None = None
    ) -> None:
        self.name = name
        self.group = group
        self.reason = reason
        self.distribution = distribution
        source = f" from {distribution}" if distribution else ""
        super().__init__(f"plugin `{name}` ({group}){source} failed: {reason}")


class MissingDependencyError(GantryError, ImportError):
    """An optional dependency is not installed.

    Examples
    --------
    >>> str(MissingDependencyError("dask", extra="cluster"))
    "`dask` is required for this feature, got it missing (pip install 'gantry[cluster]')"
    """

    def __init__(self, module: str, *, extra: str, install: str | None = None) -> None:
        self.module = module
        self.extra = extra
        fix = install or f"pip install 'gantry[{extra}]'"
        super().__init__(f"`{module}` is required for this feature, got it missing ({fix})")
