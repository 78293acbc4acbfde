"""Verbs of reversible anonymization: ``keys init``, ``keys rotate``, ``lock``, ``recover``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from gantry.cli._app import cli, db_option, query_option, run_guarded, summary
from gantry.errors import VaultKeyError

_key_option = click.option(
    "--key",
    "key",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("gantry.key"),
    envvar="GANTRY_KEY",
    show_default=True,
    help="Vault key file (env GANTRY_KEY).",
)
_passphrase_option = click.option(
    "--passphrase-env",
    "passphrase_env",
    metavar="VAR",
    default=None,
    help="Read the key file's passphrase from environment variable VAR.",
)


def _passphrase(var: str | None) -> str | None:
    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        raise VaultKeyError(f"`--passphrase-env` names {var!r}, which is unset or empty")
    return value


@cli.group()
def keys() -> None:
    """Create and rotate the identity vault key."""


@keys.command("init")
@db_option
@_key_option
@_passphrase_option
def keys_init(db: Path, key: Path, passphrase_env: str | None) -> None:
    """Create a vault key file (mode 0600, never overwritten) and enable the vault."""
    from gantry.session import Session

    def body() -> None:
        if key.exists():  # `init` creates; the Python verb loads an existing key instead
            raise VaultKeyError(f"key file `{key}` already exists; refusing to overwrite a key")
        with Session(db) as s:
            path = s.enable_reversible_anonymization(key, passphrase=_passphrase(passphrase_env))
            fingerprint = s.store.get_meta("vault_key_fingerprint")
        click.echo(
            f"wrote vault key {path} (fingerprint {fingerprint}); keep it apart from the data"
        )

    run_guarded(body)


@keys.command("rotate")
@db_option
@_key_option
@_passphrase_option
@click.option(
    "--new-key",
    "new_key",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Where to write the new key file.",
)
@click.option(
    "--new-passphrase-env",
    "new_passphrase_env",
    metavar="VAR",
    default=None,
    help="Protect the new key with the passphrase in environment variable VAR.",
)
def keys_rotate(
    db: Path, key: Path, passphrase_env: str | None, new_key: Path, new_passphrase_env: str | None
) -> None:
    """Re-encrypt the whole vault under a new key; the old key stops working."""
    from gantry.session import Session

    def body() -> None:
        with Session(db) as s:
            s.load_key(key, _passphrase(passphrase_env))
            path = s.rotate_key(new_key, passphrase=_passphrase(new_passphrase_env))
        click.echo(f"vault re-encrypted under {path}; destroy the old key {key}")

    run_guarded(body)


@cli.command()
@db_option
@_key_option
@_passphrase_option
@click.option(
    "--patients",
    "patients",
    multiple=True,
    metavar="ID",
    help="Original PatientID to lock (repeat the option; default: every patient).",
)
@query_option("instances, selecting patients")
def lock(
    db: Path, key: Path, passphrase_env: str | None, patients: tuple[str, ...], query: str | None
) -> None:
    """Encrypt the original identities of the selected patients into the vault."""
    from gantry.session import Session

    def body() -> None:
        with Session(db) as s:
            s.load_key(key, _passphrase(passphrase_env))
            n = s.lock_identities(list(patients) if patients else None, query=query)
        summary(f"locked {n} patient identities", locked=n)

    run_guarded(body)


@cli.command()
@click.argument("pseudonym")
@db_option
@_key_option
@_passphrase_option
@click.option("--uid", "is_uid", is_flag=True, help="PSEUDONYM is a new UID: print its original.")
def recover(db: Path, key: Path, passphrase_env: str | None, pseudonym: str, is_uid: bool) -> None:
    """Print the original identity behind PSEUDONYM as JSON (exit 2 on a wrong key)."""
    from gantry.session import Session

    def body() -> None:
        with Session(db, read_only=True) as s:
            s.load_key(key, _passphrase(passphrase_env))
            if is_uid:
                click.echo(
                    json.dumps({"new_uid": pseudonym, "original_uid": s.recover_uid(pseudonym)})
                )
            else:
                click.echo(json.dumps(s.recover_patient_identity(pseudonym), indent=2))

    run_guarded(body)
