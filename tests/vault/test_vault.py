"""The identity vault end to end: lock, recover, tamper, rotate, export recovery, CLI."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pydicom
import pytest
from click.testing import CliRunner

from gantry import Session
from gantry.cli import cli
from gantry.errors import TamperedVaultError, VaultError, VaultKeyError
from gantry.plan import uid_map
from gantry.plan._pseudonyms import assign_pseudonyms
from gantry.testing import Corpus, make_corpus
from gantry.vault import IDENTITY_SCHEMA, read_key_file, recover_from_export


@dataclass
class Locked:
    corpus: Corpus
    db: Path
    key: Path
    export: Path
    root: Path
    pseudonyms: dict[str, str]  # original PatientID -> pseudonym


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Locked:
    root = tmp_path_factory.mktemp("vault")
    corpus = make_corpus(
        root / "dicom", patients=3, studies_per_patient=2, series_per_study=2,
        instances_per_series=2, canaries=True, compressed=False, multiframe=False,
    )  # fmt: skip
    db, key = root / "s.db", root / "keys" / "gantry.key"
    key.parent.mkdir()
    with Session(db) as s:
        s.ingest(root / "dicom", workers=1, progress=False)
        s.anonymize(None)
        assert s.enable_reversible_anonymization(key) == key
        assert s.lock_identities() == 3
        r = s.export(root / "out", safe=False, workers=1, progress=False)
        assert r.ok, r.failed
        pairs = s.sql(
            "SELECT DISTINCT i.PatientID AS pid, p.new_value AS pseudonym FROM plan p "
            "JOIN instances i USING (file_id) WHERE p.path = '00100020' AND p.action = 'P'"
        )
    return Locked(corpus, db, key, root / "out", root, dict(pairs.iter_rows()))


def _contract_plan(s: Session) -> None:
    """Plan rows per the contract (P for PatientID/PatientName, U for the three UIDs),
    for the synthetic index, whose elements the full plan builder need not see."""
    inst = s.sql(
        "SELECT file_id, coalesce(PatientID, '') AS PatientID, StudyInstanceUID, "
        "SeriesInstanceUID, SOPInstanceUID FROM instances"
    )
    people = assign_pseudonyms(
        s.store, inst["PatientID"].unique().to_list(), template="ANON_{id}", method="counter"
    )
    frames = []
    for tag, kw, vr, action in (
        ("00100020", "PatientID", "LO", "P"),
        ("00100010", "PatientName", "PN", "P"),
        ("0020000D", "StudyInstanceUID", "UI", "U"),
        ("0020000E", "SeriesInstanceUID", "UI", "U"),
        ("00080018", "SOPInstanceUID", "UI", "U"),
    ):
        if action == "P":
            new = inst.join(people, on="PatientID").select(
                "file_id", pl.col("pseudonym").alias("new")
            )
        else:
            uids = uid_map(s.store.secret, inst[kw].to_list())
            new = inst.join(uids, left_on=kw, right_on="id_old").select(
                "file_id", pl.col("id_new").alias("new")
            )
        frames.append(
            new.select(
                "file_id", pl.lit(tag).alias("path"), pl.lit(tag).alias("tag"),
                pl.lit(kw).alias("keyword"), pl.lit(vr).alias("vr"), pl.lit(action).alias("action"),
                pl.col("new").alias("new_value"), pl.lit("test").alias("rule"),
            )
        )  # fmt: skip
    s.store.write_table("plan", pl.concat(frames))


def _copy_session(src: Locked, dest: Path) -> Path:
    """A private copy of the locked session (for tests that alter it)."""
    shutil.copy(src.db, dest / "s.db")
    shutil.copytree(src.db.with_name("s.gantry"), dest / "s.gantry")
    (dest / "s.gantry" / ".lock").unlink(missing_ok=True)
    return dest / "s.db"


def _vault_files(db: Path) -> list[Path]:
    return sorted((db.with_name(db.stem + ".gantry") / "tables" / "identities").glob("*.parquet"))


def _needles(corpus: Corpus) -> set[str]:
    """Every original identifying value planted in the corpus."""
    out: set[str] = set(corpus.canaries)
    for p in corpus.patients:
        out |= {p.patient_id, p.birth_date, *p.other_patient_ids}
        out |= {part for part in p.name.split("^") if len(part) >= 3}
        for st in p.studies:
            out |= {st.accession_number, st.study_instance_uid}
            for se in st.series:
                out.add(se.series_instance_uid)
                out |= {i.sop_instance_uid for i in se.instances}
    return {n for n in out if n}


def test_round_trip_recovers_each_patient(locked: Locked) -> None:
    with Session(locked.db, read_only=True) as s:
        s.load_key(locked.key)
        for spec in locked.corpus.patients:
            ident = s.recover_patient_identity(locked.pseudonyms[spec.patient_id])
            assert ident["pseudonym"] == locked.pseudonyms[spec.patient_id]
            assert ident["PatientID"] == spec.patient_id
            assert ident["PatientName"] == [spec.name]
            assert ident["PatientBirthDate"] == [spec.birth_date]
            assert ident["PatientSex"] == [spec.sex]
            assert set(ident["OtherPatientIDs"]) <= set(spec.other_patient_ids)
            assert set(ident["AccessionNumber"]) == {st.accession_number for st in spec.studies}
            assert set(ident["StudyInstanceUID"]) == {st.study_instance_uid for st in spec.studies}
            sops = {
                i.sop_instance_uid for st in spec.studies for se in st.series for i in se.instances
            }
            assert set(ident["SOPInstanceUID"]) == sops
            assert ident["instances"] == len(sops)
            assert all(new.startswith("2.25.") for new in ident["SOPInstanceUID"].values())


def test_recover_uid_from_exported_files(locked: Locked) -> None:
    originals = {i.sop_instance_uid for i in locked.corpus.instances()}
    studies = {st.study_instance_uid for st in locked.corpus.studies()}
    files = sorted(locked.export.rglob("*.dcm"))
    assert len(files) == len(originals)
    with Session(locked.db, read_only=True) as s:
        s.load_key(locked.key)
        recovered = set()
        for f in files:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            recovered.add(s.recover_uid(ds.SOPInstanceUID))
            assert s.recover_uid(ds.StudyInstanceUID) in studies
        assert recovered == originals
        with pytest.raises(VaultError, match="not in the identity vault"):
            s.recover_uid("2.25.1")
        with pytest.raises(VaultError, match="no identity is locked"):
            s.recover_patient_identity("ANON_9999")


def test_recover_from_export_needs_only_files_vault_and_key(locked: Locked, tmp_path: Path) -> None:
    # the vault and the key travel without the session
    vault = tmp_path / "identities.parquet"
    shutil.copy(_vault_files(locked.db)[0], vault)
    with Session(locked.db, read_only=True) as s:
        s.load_key(locked.key)
        expected = {p: s.recover_patient_identity(p) for p in locked.pseudonyms.values()}
    assert recover_from_export(locked.export, vault, locked.key) == expected
    one = sorted(locked.export.rglob("*.dcm"))[0]
    ds = pydicom.dcmread(one, stop_before_pixels=True)
    assert recover_from_export(one, vault, locked.key) == {ds.PatientID: expected[ds.PatientID]}
    by_uid = recover_from_export(ds.SOPInstanceUID, vault, locked.key)
    assert by_uid[ds.PatientID]["original_uid"] in expected[ds.PatientID]["SOPInstanceUID"]
    other = tmp_path / "other.key"
    shutil.copy(locked.key, other)
    other.write_text(other.read_text().replace('"key": "', '"key": "A', 1)[:-1])
    with pytest.raises(VaultKeyError):
        recover_from_export(locked.export, vault, other)


def test_wrong_or_missing_key(locked: Locked, tmp_path: Path) -> None:
    with Session(locked.db, read_only=True) as s:
        with pytest.raises(VaultKeyError, match="no vault key is loaded"):
            s.recover_patient_identity("ANON_0001")
        with pytest.raises(VaultKeyError, match=r"`.*missing\.key` does not exist"):
            s.load_key(tmp_path / "missing.key")
    (tmp_path / "nothing").mkdir()
    with Session(tmp_path / "other.db") as other:
        other.ingest(tmp_path / "nothing", workers=1, progress=False)  # only ingest creates one
        other.enable_reversible_anonymization(tmp_path / "other.key")
    with Session(locked.db, read_only=True) as s:
        with pytest.raises(VaultKeyError, match="wrong key for this session"):
            s.load_key(tmp_path / "other.key")
    with pytest.raises(VaultKeyError, match="does not match the identity vault"):
        recover_from_export(locked.export, _vault_files(locked.db)[0], tmp_path / "other.key")


def _rewrite_vault(db: Path, change: callable) -> None:  # type: ignore[valid-type]
    (path,) = _vault_files(db)
    table = pq.read_table(path)
    pq.write_table(change(table), path)


def _error_text(exc: pytest.ExceptionInfo[BaseException]) -> str:
    return str(exc.value) + repr(exc.value.args)


def test_tampered_ciphertext_is_detected(locked: Locked, tmp_path: Path) -> None:
    db = _copy_session(locked, tmp_path)

    def flip(table: pa.Table) -> pa.Table:
        values = table.column("ciphertext").to_pylist()
        values[0] = values[0][:10] + bytes([values[0][10] ^ 0x01]) + values[0][11:]
        return table.set_column(2 + 1, "ciphertext", pa.array(values, pa.binary()))

    _rewrite_vault(db, flip)
    victim = pq.read_table(_vault_files(db)[0]).column("pseudonym")[0].as_py()
    with Session(db) as s:
        s.load_key(locked.key)
        with pytest.raises(TamperedVaultError) as exc:
            s.recover_patient_identity(victim)
        assert not [n for n in _needles(locked.corpus) if n in _error_text(exc)]
        survivors = set(locked.pseudonyms.values()) - {victim}
        assert all(s.recover_patient_identity(p)["pseudonym"] == p for p in survivors)


def test_rows_moved_to_another_pseudonym_fail(locked: Locked, tmp_path: Path) -> None:
    db = _copy_session(locked, tmp_path)

    def swap(table: pa.Table) -> pa.Table:
        for name in ("nonce", "ciphertext"):
            values = table.column(name).to_pylist()
            values[0], values[1] = values[1], values[0]
            table = table.set_column(
                table.schema.get_field_index(name), name, pa.array(values, pa.binary())
            )
        return table

    _rewrite_vault(db, swap)
    a, b = pq.read_table(_vault_files(db)[0]).column("pseudonym").to_pylist()[:2]
    with Session(db) as s:
        s.load_key(locked.key)
        for p in (a, b):
            with pytest.raises(TamperedVaultError, match="altered or rows were moved"):
                s.recover_patient_identity(p)


def test_nothing_identifying_in_vault_files_or_key(locked: Locked) -> None:
    needles = _needles(locked.corpus)
    assert len(needles) > 40
    files = [*_vault_files(locked.db), locked.key]
    for f in files:
        data = f.read_bytes()
        assert not [n for n in needles if n.encode() in data], f.name
    # Parquet pages are compressed: also look at every decoded value
    for f in _vault_files(locked.db):
        table = pq.read_table(f)
        assert set(table.column_names) == set(IDENTITY_SCHEMA)
        for col in table.columns:
            for value in col.to_pylist():
                items = value if isinstance(value, list) else [value]
                for item in items:
                    raw = item if isinstance(item, bytes) else str(item).encode()
                    assert not [n for n in needles if n.encode() in raw]
    with Session(locked.db, read_only=True) as s:
        runs = s.sql("SELECT counts, details FROM runs WHERE kind = 'lock'")
        text = json.dumps(runs.rows())
        assert not [n for n in needles if n in text]
        assert read_key_file(locked.key).fingerprint == s.store.get_meta("vault_key_fingerprint")


def test_rotation_new_key_works_old_key_fails(locked: Locked, tmp_path: Path) -> None:
    db = _copy_session(locked, tmp_path)
    with Session(db) as s:
        s.load_key(locked.key)
        before = {p: s.recover_patient_identity(p) for p in locked.pseudonyms.values()}
        old_rows = s.sql("SELECT pseudonym, ciphertext FROM identities ORDER BY 1")
        new_key = s.rotate_key(tmp_path / "new.key", passphrase="rotate me")
        assert {p: s.recover_patient_identity(p) for p in before} == before
        new_rows = s.sql("SELECT pseudonym, ciphertext FROM identities ORDER BY 1")
        assert not set(old_rows["ciphertext"].to_list()) & set(new_rows["ciphertext"].to_list())
        with pytest.raises(VaultKeyError, match="refusing to overwrite"):
            s.rotate_key(new_key)
    with Session(db) as s:
        with pytest.raises(VaultKeyError, match="wrong key"):
            s.load_key(locked.key)
        with pytest.raises(VaultKeyError, match="wrong passphrase"):
            s.load_key(new_key, "not it")
        s.load_key(new_key, "rotate me")
        assert s.recover_patient_identity(next(iter(before)))["pseudonym"] == next(iter(before))
        sop = next(iter(before[next(iter(before))]["SOPInstanceUID"].items()))
        assert s.recover_uid(sop[1]) == sop[0]
    with pytest.raises(VaultKeyError):
        recover_from_export(locked.export, _vault_files(db)[0], locked.key)


def test_lock_selection_and_preconditions(locked: Locked, tmp_path: Path) -> None:
    db = _copy_session(locked, tmp_path)
    first = locked.corpus.patients[0].patient_id
    with Session(db) as s:
        with pytest.raises(VaultKeyError, match="no vault key is loaded"):
            s.lock_identities()
        s.load_key(locked.key)
        locked_at = s.sql("SELECT pseudonym, locked_at FROM identities ORDER BY 1")
        assert s.lock_identities([first]) == 1
        after = s.sql("SELECT pseudonym, locked_at FROM identities ORDER BY 1")
        assert after.height == 3
        changed = after.join(locked_at, on="pseudonym").filter(
            pl.col("locked_at") != pl.col("locked_at_right")
        )
        assert changed["pseudonym"].to_list() == [locked.pseudonyms[first]]
        assert s.lock_identities(query=f"PatientID = '{first}'") == 1
        assert s.lock_identities(query="Modality IS NOT NULL") == 3
        with pytest.raises(VaultError, match="1 of the given `patients` are not in the index"):
            s.lock_identities([first, "NOT-A-PATIENT"])
        with pytest.raises(VaultError, match="already enabled"):
            s.enable_reversible_anonymization(tmp_path / "again.key")
        kinds = s.sql("SELECT kind, details FROM runs WHERE kind = 'lock' ORDER BY started_at")
        assert kinds.height >= 4 and first not in json.dumps(kinds.rows())
    with Session(tmp_path / "fresh.db") as s:
        s.ingest(locked.root / "dicom", workers=1, progress=False)
        s.enable_reversible_anonymization(tmp_path / "fresh.key")
        # before any plan (the original README's order): recorded, sealed by anonymize
        assert s.lock_identities([first]) == 1
        assert s.lock_identities(query=f"PatientID = '{first}'") == 1
        with pytest.raises(VaultError, match="1 of the given `patients` are not in the index"):
            s.lock_identities(["NOT-A-PATIENT"])
        assert "identities" not in s.tables()
        pending = s.store.get_meta("vault_pending_locks") or ""
        assert pending and first not in pending  # file ids only, never a patient's ID
        s.anonymize()
        (pseudonym,) = s.sql("SELECT pseudonym FROM identities")["pseudonym"].to_list()
        planned = s.sql(
            "SELECT DISTINCT p.new_value FROM plan p JOIN instances i USING (file_id) "
            "WHERE p.path = '00100020' AND i.PatientID = ?",
            [first],
        )["new_value"].to_list()
        assert planned == [pseudonym]
        assert s.recover_patient_identity(pseudonym)["PatientID"] == first
        assert s.store.get_meta("vault_pending_locks") is None  # sealed once


def test_cli_keys_lock_recover(locked: Locked, tmp_path: Path) -> None:
    db = _copy_session(locked, tmp_path)
    with Session(db) as s:  # start the CLI from a session without a vault
        s.store.drop_table("identities")
        s.store.con.execute("DELETE FROM meta WHERE key LIKE 'vault_%'").fetchall()
    runner = CliRunner()
    key = tmp_path / "cli.key"
    env = {"GANTRY_TEST_PASS": "s3cret pass"}
    args = ["--db", str(db), "--key", str(key), "--passphrase-env", "GANTRY_TEST_PASS"]
    r = runner.invoke(cli, ["keys", "init", *args], env=env)
    assert r.exit_code == 0, r.output
    assert key.stat().st_mode & 0o777 == 0o600
    r = runner.invoke(cli, ["keys", "init", *args], env=env)
    assert r.exit_code == 2 and "refusing to overwrite" in r.output
    first = locked.corpus.patients[0].patient_id
    r = runner.invoke(cli, ["lock", *args, "--patients", first], env=env)
    assert r.exit_code == 0 and "locked 1 patient" in r.output, r.output
    pseudonym = locked.pseudonyms[first]
    r = runner.invoke(cli, ["recover", pseudonym, *args], env=env)
    assert r.exit_code == 0, r.output
    ident = json.loads(r.output)
    assert ident["PatientID"] == first and ident["pseudonym"] == pseudonym
    new_sop, old_sop = next((n, o) for o, n in ident["SOPInstanceUID"].items())
    r = runner.invoke(cli, ["recover", new_sop, "--uid", *args], env=env)
    assert r.exit_code == 0 and json.loads(r.output)["original_uid"] == old_sop
    r = runner.invoke(cli, ["recover", pseudonym, *args], env={"GANTRY_TEST_PASS": "wrong"})
    assert r.exit_code == 2 and "wrong passphrase" in r.output and first not in r.output
    other = tmp_path / "other.key"
    r = runner.invoke(cli, ["recover", pseudonym, "--db", str(db), "--key", str(locked.key)])
    assert r.exit_code == 2 and "wrong key" in r.output
    r = runner.invoke(cli, ["keys", "rotate", *args, "--new-key", str(other)], env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["recover", pseudonym, "--db", str(db), "--key", str(other)])
    assert r.exit_code == 0 and json.loads(r.output)["PatientID"] == first


def test_failed_rotation_changes_nothing(locked: Locked, tmp_path: Path) -> None:
    db = _copy_session(locked, tmp_path)

    def flip(table: pa.Table) -> pa.Table:
        values = table.column("ciphertext").to_pylist()
        values[-1] = values[-1][:-1] + bytes([values[-1][-1] ^ 0x80])
        return table.set_column(
            table.schema.get_field_index("ciphertext"), "ciphertext", pa.array(values, pa.binary())
        )

    _rewrite_vault(db, flip)
    with Session(db) as s:
        s.load_key(locked.key)
        before = s.store.get_meta("vault_key_fingerprint")
        with pytest.raises(TamperedVaultError):
            s.rotate_key(tmp_path / "new.key")
        assert not (tmp_path / "new.key").exists()
        assert s.store.get_meta("vault_key_fingerprint") == before
        assert s.store.get_meta("vault_key_fingerprint_next") is None


def test_rotation_interrupted_before_the_switch_is_finished_by_load_key(
    locked: Locked, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gantry.store import Store

    db = _copy_session(locked, tmp_path)
    real = Store.set_meta

    def cut(self: Store, key: str, value: str) -> None:
        if key == "vault_key_fingerprint":
            raise KeyboardInterrupt  # the process dies right after the new table landed
        real(self, key, value)

    pseudonym = next(iter(locked.pseudonyms.values()))
    with Session(db) as s:
        s.load_key(locked.key)
        expected = s.recover_patient_identity(pseudonym)
        monkeypatch.setattr(Store, "set_meta", cut)
        with pytest.raises(KeyboardInterrupt):
            s.rotate_key(tmp_path / "new.key")
        monkeypatch.setattr(Store, "set_meta", real)
    assert (tmp_path / "new.key").exists()  # the rows are under it: never deleted
    with Session(db) as s:
        s.load_key(tmp_path / "new.key")
        assert s.recover_patient_identity(pseudonym) == expected
        assert s.store.get_meta("vault_key_fingerprint_next") is None
        with pytest.raises(VaultKeyError):
            s.load_key(locked.key)


def test_documents_match_a_per_patient_reference(tmp_path: Path) -> None:
    """The vectorised documents equal a plain per-patient computation (synthetic index)."""
    from gantry.testing._synthetic_index import make_synthetic_index
    from gantry.vault._documents import identity_documents

    with Session(tmp_path / "syn.db") as s:
        make_synthetic_index(s.store, 400, patients=25, instances_per_series=4, series_per_study=2)
        _contract_plan(s)
        docs = identity_documents(s.store)
        assert docs.frame.height == 25 and docs.instances == 400
        rows = s.sql(
            "SELECT i.PatientID, i.PatientName, strftime(i.PatientBirthDate, '%Y%m%d') AS dob, "
            "i.AccessionNumber, i.SOPInstanceUID, p.new_value AS pseudonym, u.new_value AS new_sop "
            "FROM instances i JOIN plan p ON p.file_id = i.file_id AND p.path = '00100020' "
            "JOIN plan u ON u.file_id = i.file_id AND u.path = '00080018'"
        )
        for doc_text, pseudonym in zip(
            docs.frame["document"], docs.frame["pseudonym"], strict=True
        ):
            doc = json.loads(doc_text)
            mine = rows.filter(pl.col("pseudonym") == pseudonym)
            assert doc["pseudonym"] == pseudonym
            assert doc["PatientID"] == mine["PatientID"][0]
            assert doc["PatientName"] == sorted(set(mine["PatientName"]))
            assert doc["PatientBirthDate"] == sorted(set(mine["dob"]))
            assert doc["AccessionNumber"] == sorted(set(mine["AccessionNumber"]))
            pairs = dict(
                zip(doc["SOPInstanceUID"]["old"], doc["SOPInstanceUID"]["new"], strict=True)
            )
            assert pairs == dict(zip(mine["SOPInstanceUID"], mine["new_sop"], strict=True))
            assert doc["instances"] == mine.height


def test_uid_arrays_stay_valid_json_for_odd_values() -> None:
    from gantry.vault._documents import _joined_runs

    for values in (["1.2", "3.4", "5"], ["1.2", 'a"b\\c\x01', "5"], ['"', "\\", "x"]):
        joined = _joined_runs(pl.Series("old", values), pl.Series([1, 1, 2]), 4)
        arrays = [json.loads("[" + text[1:] + "]") for text in joined]
        assert arrays == [[], values[:2], values[2:], []]


def test_lock_refuses_instances_newer_than_the_plan(locked: Locked, tmp_path: Path) -> None:
    from gantry.testing import make_instance

    db = _copy_session(locked, tmp_path)
    first = locked.corpus.patients[0].patient_id
    make_instance(tmp_path / "late" / "a.dcm", modality="CT", PatientID=first, seed=5)
    with Session(db) as s:
        s.load_key(locked.key)
        s.ingest(tmp_path / "late", workers=1, progress=False)
        with pytest.raises(
            VaultError, match="1 instances of the selected patients are not in the plan"
        ):
            s.lock_identities([first])
        make_instance(tmp_path / "late2" / "b.dcm", modality="CT", PatientID="NEWCOMER", seed=6)
        s.ingest(tmp_path / "late2", workers=1, progress=False)
        with pytest.raises(VaultError, match="1 selected patients have no pseudonym"):
            s.lock_identities(["NEWCOMER"])
        # the others are unaffected
        others = [p.patient_id for p in locked.corpus.patients[1:]]
        assert s.lock_identities(others) == 2


def test_first_lock_in_parts_keeps_every_row_and_lookup_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first lock is sealed and written a few patients at a time: every patient's row,
    its sorted distinct lookup tags and every UID's recovery are as in one piece."""
    from gantry.testing._synthetic_index import make_synthetic_index
    from gantry.vault import _vault
    from gantry.vault._tags import uid_tag

    monkeypatch.setattr(_vault, "SEAL_CHUNK", 4)
    with Session(tmp_path / "syn.db") as s:
        make_synthetic_index(s.store, 120, patients=10, instances_per_series=3, series_per_study=2)
        _contract_plan(s)
        s.enable_reversible_anonymization(tmp_path / "k.key")
        assert s.lock_identities() == 10
        assert len(_vault_files(tmp_path / "syn.db")) == 3  # 4 + 4 + 2 patients
        rows = s.sql("SELECT * FROM identities")
        assert rows.height == 10 and rows["pseudonym"].n_unique() == 10
        assert len(set(rows["nonce"].to_list())) == 10
        plan = s.sql(
            "SELECT p.new_value AS pseudonym, u.new_value AS new_uid, u.path, i.PatientID, "
            "i.SOPInstanceUID FROM plan p JOIN plan u ON u.file_id = p.file_id "
            "JOIN instances i ON i.file_id = p.file_id "
            "WHERE p.path = '00100020' AND u.path IN ('0020000D', '0020000E', '00080018')"
        )
        lookup = read_key_file(tmp_path / "k.key").subkey("uid-lookup")
        for pseudonym, keys in rows.select("pseudonym", "uid_keys").iter_rows():
            mine = plan.filter(pl.col("pseudonym") == pseudonym)
            expected = sorted({uid_tag(lookup, u) for u in mine["new_uid"]})
            assert keys == expected
            ident = s.recover_patient_identity(pseudonym)
            assert ident["PatientID"] == mine["PatientID"][0]
            assert ident["instances"] == mine.filter(pl.col("path") == "00080018").height
        for new_uid, old_uid in (
            plan.filter(pl.col("path") == "00080018")
            .select("new_uid", "SOPInstanceUID")
            .head(30)
            .iter_rows()
        ):
            assert s.recover_uid(new_uid) == old_uid


def test_patient_runs_group_instances_in_order_whether_or_not_they_come_together() -> None:
    from gantry.vault._documents import _patient_runs

    for pids in (["a", "a", "b", "c", "c"], ["c", "a", "b", "a", "c"]):
        inst = pl.DataFrame({"PatientID": pids, "i": range(len(pids))})
        patients = pl.DataFrame({"PatientID": ["a", "b", "c"], "pseudonym": ["A", "B", "C"]})
        grouped, keyed = _patient_runs(inst, patients)
        assert grouped["_p"].is_sorted() and sorted(keyed["_p"].to_list()) == [0, 1, 2]
        of = dict(zip(keyed["_p"], keyed["PatientID"], strict=True))
        assert [of[p] for p in grouped["_p"]] == grouped["PatientID"].to_list()
        for pid in "abc":  # each patient's instances keep their order
            mine = grouped.filter(pl.col("PatientID") == pid)["i"].to_list()
            assert mine == [i for i, p in enumerate(pids) if p == pid]
