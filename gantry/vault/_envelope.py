"""The Encrypted Attributes Sequence (0400,0500): original values inside the exported file.

PS3.3 C.12.1.1.4.1 and PS3.15 E.1.1: each item of the Encrypted Attributes Sequence
holds an Encrypted Content Transfer Syntax UID (0400,0510) and an Encrypted Content
(0400,0520), a CMS EnvelopedData (RFC 5652) whose ``id-data`` content is a data set,
encoded in that transfer syntax (Explicit VR Little Endian here), holding one
Modified Attributes Sequence (0400,0550) with a single item: the original values.

Two kinds of recipient, one item each (the standard allows several items, the same
content encrypted for different recipients):

- a recipient **certificate** (RSA): key transport, built with
  :class:`cryptography.hazmat.primitives.serialization.pkcs7.PKCS7EnvelopeBuilder`
  (RSAES-PKCS1-v1_5 key transport, AES-256-CBC content), openable by any CMS tool
  with the private key;
- the **vault key**: a KEKRecipientInfo (RFC 5652 6.2.3) — the content key wrapped
  with AES-256 key wrap (RFC 3394) under the vault key's ``cms-kek`` subkey, the key
  identifier being the vault key fingerprint. ``cryptography`` has no builder for
  this recipient kind, so Gantry writes that EnvelopedData with its own small DER
  encoder (``openssl cms -decrypt -secretkey`` opens it).

EnvelopedData with CBC is encryption without integrity: a changed byte of the
ciphertext is detected only when it breaks the padding or the data set. Sign the
exported instance (Digital Signatures Sequence) where integrity matters.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from cryptography.hazmat.primitives.serialization import pkcs7
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from gantry.errors import TamperedVaultError, VaultKeyError
from gantry.vault import _der as der
from gantry.vault._keys import VaultKey

ID_DATA = "1.2.840.113549.1.7.1"
ID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
AES256_WRAP = "2.16.840.1.101.3.4.1.45"
AES_CBC = {
    "2.16.840.1.101.3.4.1.2": 16,  # aes128-CBC
    "2.16.840.1.101.3.4.1.22": 24,  # aes192-CBC
    "2.16.840.1.101.3.4.1.42": 32,  # aes256-CBC
}
AES256_CBC = "2.16.840.1.101.3.4.1.42"

_NOT_COPIED = {
    0x7FE00008,  # FloatPixelData
    0x7FE00009,  # DoubleFloatPixelData
    0x7FE00010,  # PixelData
    0x04000500,  # EncryptedAttributesSequence
}

PrivateKey = rsa.RSAPrivateKey | VaultKey | bytes


def _as_vault_key(key: VaultKey | bytes) -> VaultKey:
    return key if isinstance(key, VaultKey) else VaultKey(bytes(key))


def modified_attributes(original: Dataset, keywords: Iterable[str] | None = None) -> Dataset:
    """The data set to encrypt: a Modified Attributes Sequence with one item of originals.

    ``keywords`` picks the attributes; by default every top-level element of
    ``original`` except file meta, pixel data and an existing Encrypted Attributes
    Sequence.
    """
    item = Dataset()
    if keywords is None:
        for elem in original:
            if elem.tag.group != 0x0002 and int(elem.tag) not in _NOT_COPIED:
                item.add(elem)
    else:
        for kw in keywords:
            if kw in original:
                item.add(original[kw])
    payload = Dataset()
    if "SpecificCharacterSet" in original:
        payload.SpecificCharacterSet = original.SpecificCharacterSet
        item.SpecificCharacterSet = original.SpecificCharacterSet
    payload.ModifiedAttributesSequence = Sequence([item])
    return payload


def _encode(ds: Dataset) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_dataset(fp, ds)
    return fp.getvalue()


def _decode(data: bytes, transfer_syntax: str) -> Dataset:
    if transfer_syntax != ExplicitVRLittleEndian:
        raise TamperedVaultError(
            f"`EncryptedContentTransferSyntaxUID` must be {ExplicitVRLittleEndian}, "
            f"got {transfer_syntax!r}"
        )
    return read_dataset(io.BytesIO(data), is_implicit_VR=False, is_little_endian=True)


def _kek_envelope(content: bytes, key: VaultKey) -> bytes:
    """CMS EnvelopedData for a KEKRecipientInfo (AES-256 key wrap, AES-256-CBC content)."""
    cek = os.urandom(32)
    iv = os.urandom(16)
    padder = sym_padding.PKCS7(128).padder()
    padded = padder.update(content) + padder.finalize()
    enc = Cipher(algorithms.AES(cek), modes.CBC(iv)).encryptor()
    encrypted = enc.update(padded) + enc.finalize()
    kekri = der.tlv(
        0xA2,  # [2] IMPLICIT KEKRecipientInfo
        der.integer(4)
        + der.sequence(der.octets(bytes.fromhex(key.fingerprint)))  # KEKIdentifier
        + der.sequence(der.oid(AES256_WRAP))
        + der.octets(aes_key_wrap(key.subkey("cms-kek"), cek)),
    )
    encrypted_content_info = der.sequence(
        der.oid(ID_DATA),
        der.sequence(der.oid(AES256_CBC), der.octets(iv)),
        der.tlv(0x80, encrypted),  # [0] IMPLICIT OCTET STRING
    )
    enveloped = der.sequence(der.integer(2), der.set_of(kekri), encrypted_content_info)
    return der.sequence(der.oid(ID_ENVELOPED_DATA), der.tlv(0xA0, enveloped))


def _cert_envelope(content: bytes, cert: x509.Certificate) -> bytes:
    return (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(content)
        .set_content_encryption_algorithm(algorithms.AES256)
        .add_recipient(cert)
        .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )


def encrypted_attributes_sequence(
    original: Dataset,
    key: VaultKey | bytes | None = None,
    recipient_cert: x509.Certificate | Iterable[x509.Certificate] | None = None,
    *,
    keywords: Iterable[str] | None = None,
) -> Sequence:
    """Build the Encrypted Attributes Sequence (0400,0500) protecting ``original``'s values.

    Parameters
    ----------
    original : pydicom.Dataset
        The instance before de-identification (or a data set of just the original
        values to protect).
    key : VaultKey or bytes, optional
        The vault key: adds an item openable with it (KEKRecipientInfo).
    recipient_cert : x509.Certificate or iterable of them, optional
        RSA recipient certificates: adds one item per certificate (key transport).
    keywords : iterable of str, optional
        The attributes to protect (default: every top-level non-pixel element).

    Returns
    -------
    pydicom.Sequence
        Assign it to ``ds.EncryptedAttributesSequence`` of the de-identified data set.

    Examples
    --------
    >>> from pydicom import Dataset
    >>> ds = Dataset()
    >>> ds.PatientName, ds.PatientID = "DOE^JANE", "PID-7"
    >>> seq = encrypted_attributes_sequence(ds, VaultKey(bytes(32)))
    >>> seq[0].EncryptedContentTransferSyntaxUID
    '1.2.840.10008.1.2.1'
    >>> b"DOE" in seq[0].EncryptedContent
    False
    >>> anon = Dataset()
    >>> anon.EncryptedAttributesSequence = seq
    >>> str(decrypt_encrypted_attributes(anon, VaultKey(bytes(32))).PatientName)
    'DOE^JANE'
    """
    if key is None and recipient_cert is None:
        raise VaultKeyError("`key` or `recipient_cert` is required, got neither")
    content = _encode(modified_attributes(original, keywords))
    envelopes: list[bytes] = []
    if recipient_cert is not None:
        certs = (
            [recipient_cert]
            if isinstance(recipient_cert, x509.Certificate)
            else list(recipient_cert)
        )
        envelopes += [_cert_envelope(content, c) for c in certs]
    if key is not None:
        envelopes.append(_kek_envelope(content, _as_vault_key(key)))
    items = []
    for env in envelopes:
        item = Dataset()
        item.EncryptedContentTransferSyntaxUID = ExplicitVRLittleEndian
        item.EncryptedContent = env
        items.append(item)
    return Sequence(items)


def _enveloped_parts(data: bytes) -> tuple[list[der.Node], der.Node]:
    """(recipient infos, encrypted content info) of a CMS EnvelopedData ContentInfo."""
    info, _ = der.parse_one(data)
    content_type, wrapped = info.children()[:2]
    if content_type.as_oid() != ID_ENVELOPED_DATA or wrapped.tag != 0xA0:
        raise ValueError("not a CMS EnvelopedData")
    fields = wrapped.children()[0].children()
    rest = fields[1:]
    if rest and rest[0].tag == 0xA0:  # originatorInfo
        rest = rest[1:]
    return rest[0].children(), rest[1]


def _content_key(recipients: list[der.Node], key: Any) -> bytes | None:
    """The content-encryption key, from the first recipient info ``key`` opens."""
    for ri in recipients:
        parts = ri.children()
        if ri.tag == 0xA2 and isinstance(key, VaultKey):  # KEKRecipientInfo
            key_id = parts[1].children()[0].as_octets()
            if key_id != bytes.fromhex(key.fingerprint):
                continue
            if parts[2].children()[0].as_oid() != AES256_WRAP:
                raise TamperedVaultError("unsupported key-encryption algorithm in the envelope")
            try:
                return aes_key_unwrap(key.subkey("cms-kek"), parts[3].as_octets())
            except InvalidUnwrap as exc:
                raise TamperedVaultError("the encrypted content key failed to unwrap") from exc
        if ri.tag == der.SEQUENCE and isinstance(key, rsa.RSAPrivateKey):  # KeyTransRecipientInfo
            if parts[2].children()[0].as_oid() != RSA_ENCRYPTION:
                continue
            try:
                return key.decrypt(parts[3].as_octets(), padding.PKCS1v15())
            except ValueError:
                continue
    return None


def _open_envelope(data: bytes, key: Any) -> bytes | None:
    recipients, eci = _enveloped_parts(data)
    cek = _content_key(recipients, key)
    if cek is None:
        return None
    parts = eci.children()
    alg = parts[1].children()
    size = AES_CBC.get(alg[0].as_oid())
    if size is None:
        raise TamperedVaultError("unsupported content-encryption algorithm in the envelope")
    if len(cek) != size:
        return None  # an RSA key that is not this recipient's (implicit rejection)
    iv = alg[1].as_octets()
    dec = Cipher(algorithms.AES(cek), modes.CBC(iv)).decryptor()
    padded = dec.update(parts[2].as_octets()) + dec.finalize()
    unpadder = sym_padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        return None


def decrypt_encrypted_attributes(ds: Dataset, private_key: PrivateKey) -> Dataset:
    """The original attributes kept in ``ds``'s Encrypted Attributes Sequence.

    Parameters
    ----------
    ds : pydicom.Dataset
        A de-identified data set holding an Encrypted Attributes Sequence.
    private_key : RSAPrivateKey, VaultKey or bytes
        The recipient's RSA private key, or the vault key.

    Returns
    -------
    pydicom.Dataset
        The single item of the Modified Attributes Sequence: the original values
        (``ds.update(result)`` restores them).

    Raises
    ------
    VaultKeyError
        No item of the sequence can be opened with ``private_key``.
    TamperedVaultError
        An item meant for this key is damaged.
    """
    key: Any = (
        private_key if isinstance(private_key, rsa.RSAPrivateKey) else _as_vault_key(private_key)
    )
    items = ds.get("EncryptedAttributesSequence") or []
    if not items:
        raise VaultKeyError("the data set has no `EncryptedAttributesSequence`")
    for item in items:
        data = bytes(item.get("EncryptedContent", b""))
        try:
            content = _open_envelope(data, key)
        except (ValueError, IndexError) as exc:
            raise TamperedVaultError(
                "an `EncryptedContent` is not a readable CMS envelope"
            ) from exc
        if content is None:
            continue
        try:
            payload = _decode(content, str(item.get("EncryptedContentTransferSyntaxUID", "")))
            result: Dataset = payload.ModifiedAttributesSequence[0]
        except (AttributeError, IndexError, ValueError, EOFError, KeyError) as exc:
            raise TamperedVaultError(
                "the decrypted content is not a Modified Attributes Sequence"
            ) from exc
        return result
    raise VaultKeyError("no item of the `EncryptedAttributesSequence` opens with this key")
