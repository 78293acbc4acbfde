"""Reversible anonymization: an encrypted identity vault and its key.

- :class:`VaultKey`, :func:`create_key_file`, :func:`read_key_file` — the 256-bit
  vault key and its file (``0o600``, optional scrypt passphrase protection);
- the ``identities`` table, one AES-256-GCM row per patient bound to its pseudonym
  (``Session.lock_identities``, ``recover_patient_identity``, ``recover_uid``,
  ``rotate_key``);
- :func:`recover_from_export` — re-identify exported files from the files, the
  vault file and the key alone;
- :func:`encrypted_attributes_sequence` and :func:`decrypt_encrypted_attributes` —
  the standard's Encrypted Attributes Sequence (0400,0500) holding a CMS
  EnvelopedData of the original values.

See ``docs/vault.md`` for the design.
"""

from gantry.vault._envelope import decrypt_encrypted_attributes, encrypted_attributes_sequence
from gantry.vault._keys import VaultKey, create_key_file, read_key_file
from gantry.vault._recover import read_vault, recover_from_export
from gantry.vault._seal import IDENTITY_SCHEMA

__all__ = [
    "IDENTITY_SCHEMA",
    "VaultKey",
    "create_key_file",
    "decrypt_encrypted_attributes",
    "encrypted_attributes_sequence",
    "read_key_file",
    "read_vault",
    "recover_from_export",
]
