"""Encrypted Attributes Sequence (0400,0500): CMS EnvelopedData round trips and failures."""

from __future__ import annotations

import copy
import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from gantry.errors import TamperedVaultError, VaultKeyError
from gantry.testing import make_instance
from gantry.vault import VaultKey, decrypt_encrypted_attributes, encrypted_attributes_sequence
from gantry.vault._envelope import modified_attributes


def _recipient(cn: str) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-signed RSA certificate and its private key."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(private, hashes.SHA256())
    )
    return cert, private


@pytest.fixture(scope="module")
def recipients() -> list[tuple[x509.Certificate, rsa.RSAPrivateKey]]:
    return [_recipient("Gantry trial re-identification"), _recipient("Someone else")]


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    path = tmp_path_factory.mktemp("env") / "ct.dcm"
    make_instance(path, modality="CT")
    return pydicom.dcmread(path)


IDENTIFYING = ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "SOPInstanceUID")


def _needles(ds: Dataset) -> list[bytes]:
    return [str(ds[kw].value).encode() for kw in IDENTIFYING if kw in ds and ds[kw].value]


def _deidentified(original: Dataset, seq: pydicom.Sequence) -> Dataset:
    anon = Dataset()
    anon.PatientName = "ANON_0001"
    anon.PatientID = "ANON_0001"
    anon.EncryptedAttributesSequence = seq
    return anon


def test_vault_key_round_trip_restores_every_original_attribute(original: Dataset) -> None:
    key = VaultKey.generate()
    seq = encrypted_attributes_sequence(original, key)
    assert len(seq) == 1
    item = seq[0]
    assert item.EncryptedContentTransferSyntaxUID == ExplicitVRLittleEndian
    for needle in _needles(original):
        assert needle not in item.EncryptedContent
    restored = decrypt_encrypted_attributes(_deidentified(original, seq), key)
    expected = modified_attributes(original).ModifiedAttributesSequence[0]
    assert restored == expected
    assert str(restored.PatientName) == str(original.PatientName)
    assert restored.SOPInstanceUID == original.SOPInstanceUID
    assert "PixelData" not in restored


def test_recipient_certificate_round_trip_and_library_interop(
    original: Dataset, recipients: list[tuple[x509.Certificate, rsa.RSAPrivateKey]]
) -> None:
    (cert, private), (other_cert, other_private) = recipients
    seq = encrypted_attributes_sequence(
        original, recipient_cert=[cert, other_cert], keywords=IDENTIFYING
    )
    assert len(seq) == 2  # one item per recipient, same content
    anon = _deidentified(original, seq)
    for key in (private, other_private):
        restored = decrypt_encrypted_attributes(anon, key)
        kept = sorted(e.keyword for e in restored if e.keyword != "SpecificCharacterSet")
        assert kept == sorted(IDENTIFYING)
        assert restored.PatientID == original.PatientID
    # cryptography's own CMS decryptor opens the envelope and finds the same data set
    content = pkcs7.pkcs7_decrypt_der(bytes(seq[0].EncryptedContent), cert, private, [])
    assert b"PatientID" not in content and original.PatientID.encode() in content


def test_written_to_a_file_and_read_back(original: Dataset, tmp_path: Path) -> None:
    key = VaultKey.generate()
    ds = copy.deepcopy(original)
    seq = encrypted_attributes_sequence(original, key)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "ANON_0001", "ANON_0001", ""
    ds.EncryptedAttributesSequence = seq
    ds.save_as(tmp_path / "anon.dcm")
    data = (tmp_path / "anon.dcm").read_bytes()
    assert str(original.PatientName).encode() not in data
    back = pydicom.dcmread(tmp_path / "anon.dcm")
    restored = decrypt_encrypted_attributes(back, key)
    back.update(restored)
    assert back.PatientID == original.PatientID
    assert back.PatientBirthDate == original.PatientBirthDate


def test_wrong_keys_are_refused(
    original: Dataset, recipients: list[tuple[x509.Certificate, rsa.RSAPrivateKey]]
) -> None:
    (cert, _), (_, other_private) = recipients
    anon = _deidentified(original, encrypted_attributes_sequence(original, VaultKey.generate()))
    with pytest.raises(VaultKeyError, match="opens with this key"):
        decrypt_encrypted_attributes(anon, VaultKey.generate())
    with pytest.raises(VaultKeyError, match="opens with this key"):
        decrypt_encrypted_attributes(anon, other_private)
    for_cert = _deidentified(original, encrypted_attributes_sequence(original, recipient_cert=cert))
    with pytest.raises(VaultKeyError):
        decrypt_encrypted_attributes(for_cert, other_private)
    with pytest.raises(VaultKeyError, match="no `EncryptedAttributesSequence`"):
        decrypt_encrypted_attributes(Dataset(), VaultKey.generate())
    with pytest.raises(VaultKeyError, match="`key` or `recipient_cert` is required"):
        encrypted_attributes_sequence(original)


def test_tampered_wrapped_key_is_detected(original: Dataset) -> None:
    key = VaultKey.generate()
    seq = encrypted_attributes_sequence(original, key)
    data = bytearray(seq[0].EncryptedContent)
    wrapped_at = data.find(bytes.fromhex(key.fingerprint)) + 16 + 2 + 11 + 2  # inside encryptedKey
    data[wrapped_at] ^= 0x01
    seq[0].EncryptedContent = bytes(data)
    with pytest.raises(TamperedVaultError):
        decrypt_encrypted_attributes(_deidentified(original, seq), key)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_openssl_opens_the_vault_key_envelope(original: Dataset, tmp_path: Path) -> None:
    key = VaultKey.generate()
    seq = encrypted_attributes_sequence(original, key, keywords=IDENTIFYING)
    (tmp_path / "env.der").write_bytes(bytes(seq[0].EncryptedContent))
    out = subprocess.run(
        [
            "openssl", "cms", "-decrypt", "-inform", "DER", "-in", str(tmp_path / "env.der"),
            "-secretkey", key.subkey("cms-kek").hex(), "-secretkeyid", key.fingerprint,
            "-binary",
        ],
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout  # fmt: skip
    fp = pydicom.filebase.DicomBytesIO(out)
    payload = pydicom.filereader.read_dataset(fp, is_implicit_VR=False, is_little_endian=True)
    assert payload.ModifiedAttributesSequence[0].PatientID == original.PatientID
