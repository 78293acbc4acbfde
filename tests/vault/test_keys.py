"""Vault key files: permissions, no overwrite, passphrases, fingerprints; UID lookup tags."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import polars as pl
import pytest

from gantry.errors import VaultKeyError
from gantry.vault import VaultKey, create_key_file, read_key_file
from gantry.vault._tags import uid_tag, uid_tags

FAST_N = 2**14  # scrypt cost for tests; the default is 2**17


def test_key_file_is_owner_only_and_round_trips(tmp_path: Path) -> None:
    key = VaultKey.generate()
    old_umask = os.umask(0)  # even with a permissive umask
    try:
        path = create_key_file(tmp_path / "gantry.key", key)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_key_file(path) == key
    assert key.material.hex() not in repr(key) and key.fingerprint in repr(key)


def test_refuses_to_overwrite_an_existing_key(tmp_path: Path) -> None:
    path = create_key_file(tmp_path / "gantry.key", VaultKey.generate())
    before = path.read_bytes()
    with pytest.raises(VaultKeyError, match="already exists; refusing to overwrite"):
        create_key_file(path, VaultKey.generate())
    assert path.read_bytes() == before


def test_missing_key_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(VaultKeyError, match=r"key file `.*nope\.key` does not exist"):
        read_key_file(tmp_path / "nope.key")


@pytest.mark.parametrize("text", ["", "not json", '{"format": "other"}'])
def test_not_a_key_file(tmp_path: Path, text: str) -> None:
    (tmp_path / "k").write_text(text)
    with pytest.raises(VaultKeyError, match="not a gantry vault key file"):
        read_key_file(tmp_path / "k")


def test_passphrase_protection(tmp_path: Path) -> None:
    key = VaultKey.generate()
    path = create_key_file(tmp_path / "k", key, passphrase="correct horse", scrypt_n=FAST_N)
    doc = json.loads(path.read_text())
    assert doc["kdf"] == {**doc["kdf"], "name": "scrypt", "n": FAST_N, "r": 8, "p": 1}
    assert "key" not in doc and key.material.hex() not in path.read_text()
    assert read_key_file(path, "correct horse") == key
    with pytest.raises(VaultKeyError, match="wrong passphrase"):
        read_key_file(path, "battery staple")
    with pytest.raises(VaultKeyError, match="passphrase-protected; pass its `passphrase`"):
        read_key_file(path)


def test_passphrase_header_is_authenticated(tmp_path: Path) -> None:
    path = create_key_file(tmp_path / "k", VaultKey.generate(), passphrase="pw", scrypt_n=FAST_N)
    doc = json.loads(path.read_text())
    doc["kdf"]["r"] = 1  # a downgrade of the stored parameters
    path.write_text(json.dumps(doc))
    with pytest.raises(VaultKeyError, match="wrong passphrase"):
        read_key_file(path, "pw")


def test_passphrase_given_for_a_plain_key(tmp_path: Path) -> None:
    path = create_key_file(tmp_path / "k", VaultKey.generate())
    with pytest.raises(VaultKeyError, match="not passphrase-protected"):
        read_key_file(path, "pw")


def test_damaged_key_material_is_caught_by_the_fingerprint(tmp_path: Path) -> None:
    path = create_key_file(tmp_path / "k", VaultKey.generate())
    doc = json.loads(path.read_text())
    doc["key"] = base64.b64encode(VaultKey.generate().material).decode()
    path.write_text(json.dumps(doc))
    with pytest.raises(VaultKeyError, match="damaged: its fingerprint does not match"):
        read_key_file(path)


def test_subkeys_are_independent_per_purpose_and_key() -> None:
    a, b = VaultKey(bytes(32)), VaultKey(bytes([1]) * 32)
    subkeys = {k.subkey(p) for k in (a, b) for p in ("identity-aead", "uid-lookup", "cms-kek")}
    assert len(subkeys) == 6
    assert a.fingerprint != b.fingerprint and len(a.fingerprint) == 32


def test_uid_tags_are_keyed_deterministic_and_columnar() -> None:
    uids = ["1.2.3", "2.25." + "9" * 59, "1.2.3", "", "x" * 80, "1.2.é"]
    k1, k2 = bytes(32), bytes([7]) * 32
    tags = uid_tags(k1, pl.Series(uids)).to_pylist()
    assert all(len(t) == 16 for t in tags)
    assert tags[0] == tags[2] and len(set(tags)) == 5
    assert tags == [uid_tag(k1, u) for u in uids]
    assert uid_tags(k2, uids).to_pylist()[0] != tags[0]
    assert len(uid_tags(k1, [])) == 0
