"""The vault master key: generation, key files, passphrase protection, derived subkeys.

A key file is one line of JSON, created with ``O_EXCL`` and mode ``0o600``::

    {"format": "gantry-vault-key", "version": 1, "fingerprint": "…",
     "protection": "none", "key": "<base64 of 32 bytes>"}

With a passphrase the key is wrapped with AES-256-GCM under a key stretched by
scrypt (memory-hard); the scrypt parameters and salt live in the file header, and
the whole header is the associated data of the wrap, so editing a parameter (a
downgrade) makes the file fail to open::

    {"format": "gantry-vault-key", "version": 1, "fingerprint": "…",
     "protection": "scrypt+aes-256-gcm",
     "kdf": {"name": "scrypt", "n": 131072, "r": 8, "p": 1, "salt": "…"},
     "nonce": "…", "wrapped_key": "…"}

The fingerprint is ``HMAC-SHA256(master, "gantry-vault/fingerprint/v1")`` — it
names the key without revealing anything about it. Each use of the key (row
encryption, UID lookup tags, CMS key wrapping) gets its own subkey through
HKDF-SHA256 with a purpose label, so no two uses ever share key material.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from gantry.errors import VaultKeyError

KEY_FILE_FORMAT = "gantry-vault-key"
KEY_FILE_VERSION = 1
KEY_BYTES = 32
SCRYPT_N = 2**17
"""scrypt cost (128 MiB of memory with ``r = 8``), the default for new key files."""
SCRYPT_R = 8
SCRYPT_P = 1
_MAX_SCRYPT_N = 2**22

Purpose = Literal["identity-aead", "uid-lookup", "cms-kek"]
"""What a subkey is for; each purpose gets independent key material."""

_FINGERPRINT_LABEL = b"gantry-vault/fingerprint/v1"


@dataclass(frozen=True, repr=False, eq=False)
class VaultKey:
    """A 256-bit vault master key. Its ``repr`` shows the fingerprint, never the key.

    Examples
    --------
    >>> key = VaultKey(bytes(32))
    >>> key
    VaultKey(fingerprint='32a02f795517d90ec37a934dc44d5ea0')
    >>> len(key.subkey("identity-aead"))
    32
    >>> key.subkey("identity-aead") != key.subkey("uid-lookup")
    True
    """

    material: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.material, bytes) or len(self.material) != KEY_BYTES:
            raise VaultKeyError(f"a vault key must be {KEY_BYTES} bytes")

    @classmethod
    def generate(cls) -> VaultKey:
        """A fresh random key from the operating system's CSPRNG."""
        return cls(secrets.token_bytes(KEY_BYTES))

    @property
    def fingerprint(self) -> str:
        """32 hex characters naming this key (an HMAC of a fixed label; reveals nothing)."""
        return hmac.digest(self.material, _FINGERPRINT_LABEL, "sha256").hex()[:32]

    def subkey(self, purpose: Purpose) -> bytes:
        """The 32-byte key for one ``purpose`` (HKDF-SHA256, info ``gantry-vault/<purpose>/v1``)."""
        return HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=f"gantry-vault/{purpose}/v1".encode(),
        ).derive(self.material)

    def __repr__(self) -> str:
        return f"VaultKey(fingerprint={self.fingerprint!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VaultKey) and hmac.compare_digest(self.material, other.material)

    def __hash__(self) -> int:
        return hash(self.fingerprint)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: Any, path: Path, name: str) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except (ValueError, TypeError) as exc:
        raise VaultKeyError(f"key file `{path}` is damaged: `{name}` is not base64") from exc


def _passphrase_bytes(passphrase: str | bytes) -> bytes:
    data = passphrase.encode("utf-8") if isinstance(passphrase, str) else bytes(passphrase)
    if not data:
        raise VaultKeyError("`passphrase` must not be empty, got ''")
    return data


def _header_ad(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def _scrypt(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)


def key_file_text(
    key: VaultKey, *, passphrase: str | bytes | None = None, scrypt_n: int = SCRYPT_N
) -> str:
    """The text of a key file holding ``key`` (wrapped when ``passphrase`` is given).

    Examples
    --------
    >>> text = key_file_text(VaultKey(bytes(32)))
    >>> json.loads(text)["protection"]
    'none'
    """
    header: dict[str, Any] = {
        "format": KEY_FILE_FORMAT,
        "version": KEY_FILE_VERSION,
        "fingerprint": key.fingerprint,
    }
    if passphrase is None:
        body = {**header, "protection": "none", "key": _b64(key.material)}
    else:
        salt = secrets.token_bytes(16)
        header.update(
            protection="scrypt+aes-256-gcm",
            kdf={"name": "scrypt", "n": scrypt_n, "r": SCRYPT_R, "p": SCRYPT_P, "salt": _b64(salt)},
        )
        nonce = secrets.token_bytes(12)
        kek = _scrypt(_passphrase_bytes(passphrase), salt, scrypt_n, SCRYPT_R, SCRYPT_P)
        header["nonce"] = _b64(nonce)
        wrapped = AESGCM(kek).encrypt(nonce, key.material, _header_ad(header))
        body = {**header, "wrapped_key": _b64(wrapped)}
    return json.dumps(body) + "\n"


def create_key_file(
    path: str | os.PathLike[str],
    key: VaultKey,
    *,
    passphrase: str | bytes | None = None,
    scrypt_n: int = SCRYPT_N,
) -> Path:
    """Write ``key`` to a new file at ``path`` (mode ``0o600``); never overwrite one.

    Raises
    ------
    VaultKeyError
        ``path`` already exists, or cannot be created.
    """
    target = Path(path).expanduser().absolute()
    text = key_file_text(key, passphrase=passphrase, scrypt_n=scrypt_n)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise VaultKeyError(
            f"key file `{target}` already exists; refusing to overwrite a key "
            "(move it away or choose another `key_path`)"
        ) from exc
    except OSError as exc:
        raise VaultKeyError(f"cannot create key file `{target}`: {exc.strerror}") from exc
    try:
        os.fchmod(fd, 0o600)  # whatever the umask was
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


def read_key_file(path: str | os.PathLike[str], passphrase: str | bytes | None = None) -> VaultKey:
    """Load the key in the file at ``path``.

    Raises
    ------
    VaultKeyError
        The file is missing or damaged, or the passphrase is missing or wrong.
    """
    source = Path(path).expanduser().absolute()
    try:
        raw = source.read_text(encoding="ascii")
    except FileNotFoundError as exc:
        raise VaultKeyError(f"key file `{source}` does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise VaultKeyError(f"cannot read key file `{source}`") from exc
    try:
        doc = json.loads(raw)
        ok = isinstance(doc, dict) and doc.get("format") == KEY_FILE_FORMAT
    except ValueError:
        ok = False
    if not ok:
        raise VaultKeyError(f"`{source}` is not a gantry vault key file")
    if doc.get("version") != KEY_FILE_VERSION:
        raise VaultKeyError(
            f"key file `{source}` has version {doc.get('version')!r}, "
            f"this gantry reads version {KEY_FILE_VERSION}"
        )
    protection = doc.get("protection")
    if protection == "none":
        if passphrase is not None:
            raise VaultKeyError(
                f"key file `{source}` is not passphrase-protected, got a `passphrase`"
            )
        material = _unb64(doc.get("key"), source, "key")
    elif protection == "scrypt+aes-256-gcm":
        if passphrase is None:
            raise VaultKeyError(
                f"key file `{source}` is passphrase-protected; pass its `passphrase`"
            )
        material = _unwrap(doc, source, _passphrase_bytes(passphrase))
    else:
        raise VaultKeyError(f"key file `{source}` has unknown protection {protection!r}")
    if len(material) != KEY_BYTES:
        raise VaultKeyError(f"key file `{source}` is damaged: the key is not {KEY_BYTES} bytes")
    key = VaultKey(material)
    if not hmac.compare_digest(key.fingerprint, str(doc.get("fingerprint", ""))):
        raise VaultKeyError(f"key file `{source}` is damaged: its fingerprint does not match")
    return key


def _unwrap(doc: dict[str, Any], source: Path, passphrase: bytes) -> bytes:
    kdf = doc.get("kdf")
    try:
        assert isinstance(kdf, dict) and kdf.get("name") == "scrypt"
        n, r, p = int(kdf["n"]), int(kdf["r"]), int(kdf["p"])
        assert 2**14 <= n <= _MAX_SCRYPT_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16
    except (AssertionError, KeyError, TypeError, ValueError) as exc:
        raise VaultKeyError(f"key file `{source}` has bad scrypt parameters") from exc
    salt = _unb64(kdf.get("salt"), source, "kdf.salt")
    nonce = _unb64(doc.get("nonce"), source, "nonce")
    wrapped = _unb64(doc.get("wrapped_key"), source, "wrapped_key")
    header = {k: v for k, v in doc.items() if k != "wrapped_key"}
    kek = _scrypt(passphrase, salt, n, r, p)
    try:
        return AESGCM(kek).decrypt(nonce, wrapped, _header_ad(header))
    except (InvalidTag, ValueError) as exc:
        raise VaultKeyError(
            f"wrong passphrase for key file `{source}` (or the file was altered)"
        ) from exc
