"""Query and retrieve from a real Orthanc, export to Orthanc and DCMTK storescp."""

from __future__ import annotations

import logging
from pathlib import Path

import pydicom
import pytest

from gantry import Session
from gantry.errors import ConfigError, NetworkError
from gantry.net import Peer, echo, find
from gantry.testing import make_corpus
from gantry.testing._servers import Orthanc, StoreSCP, storescp


def _fill(pacs: Orthanc, root: Path, **kw: int):
    corpus = make_corpus(
        root,
        patients=kw.get("patients", 2),
        studies_per_patient=kw.get("studies", 1),
        series_per_study=kw.get("series", 2),
        instances_per_series=kw.get("instances", 2),
        canaries=True,
    )
    for p in corpus.paths:
        pacs.upload(p)
    return corpus


def _sop_uids(paths: list[Path]) -> list[str]:
    return sorted(str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths)


def test_echo_and_rejected_ae_title(pacs: Orthanc) -> None:
    assert echo(Peer.parse(pacs.url)) > 0
    wrong = pacs.url.replace("ORTHANC@", "NOTTHEPACS@")
    with pytest.raises(NetworkError, match="rejected") as err:
        echo(Peer.parse(wrong))
    assert err.value.peer.startswith("NOTTHEPACS@127.0.0.1:")


def test_find_at_each_level(pacs: Orthanc, tmp_path: Path) -> None:
    corpus = _fill(pacs, tmp_path / "dicom")
    peer = Peer.parse(pacs.url)
    patients = find(peer, level="PATIENT")
    assert sorted(patients["PatientID"].to_list()) == sorted(p.patient_id for p in corpus.patients)
    studies = find(peer, {"PatientID": corpus.patients[0].patient_id}, level="study")
    assert studies.height == 1
    series = find(peer, {"StudyInstanceUID": studies["StudyInstanceUID"][0]}, level="SERIES")
    assert series.height == 2
    with pytest.raises(ConfigError, match="`level` must be one of"):
        find(peer, level="VOLUME")
    with pytest.raises(ConfigError, match="query.NotAKeyword"):
        find(peer, {"NotAKeyword": "x"})


@pytest.mark.parametrize("method", ["move", "get"])
def test_pull_retrieves_ingests_and_resumes(
    pacs: Orthanc, tmp_path: Path, move_port: int, method: str
) -> None:
    corpus = _fill(pacs, tmp_path / "dicom")
    first = corpus.patients[0].patient_id
    with Session(tmp_path / "s.db") as s:
        r = s.pull(pacs.url, query={"PatientID": first}, method=method, port=move_port)
        assert r.ok, r.errors
        assert (r.matched, r.retrieved, r.ingest.indexed) == (1, 4, 4)
        assert r.dest == tmp_path / "s.received"
        # everything else, at series level: the first patient's files are not duplicated
        r2 = s.pull(pacs.url, query={}, level="SERIES", method=method, port=move_port)
        assert (r2.matched, r2.retrieved, r2.duplicates, r2.ingest.indexed) == (4, 8, 4, 4)
        got = s.sql("SELECT SOPInstanceUID FROM instances ORDER BY 1")["SOPInstanceUID"]
        assert got.to_list() == _sop_uids(corpus.paths)
        t = s.sql("SELECT direction, status, count(*) AS n FROM transfers GROUP BY ALL")
        assert t.rows() == [("retrieve", "ok", 12)]
        assert s.sql("SELECT count(*) FROM runs WHERE kind = 'pull'").item() == 2


def test_pull_patient_level_and_errors(pacs: Orthanc, tmp_path: Path, move_port: int) -> None:
    corpus = _fill(pacs, tmp_path / "dicom", patients=1)
    with Session(tmp_path / "s.db") as s:
        r = s.pull(pacs.url, query={"PatientID": "*"}, level="PATIENT", port=move_port)
        assert (r.matched, r.retrieved) == (1, len(corpus.paths))
        with pytest.raises(ConfigError, match="`port` must be the port"):
            s.pull(pacs.url, query={}, method="move")
        with pytest.raises(ConfigError, match="`source` must be a URL"):
            s.pull("pacs.example:104", query={})
        with pytest.raises(NetworkError, match="rejected"):
            s.pull(pacs.url.replace("ORTHANC@", "WRONG@"), query={}, method="get")


def _anonymized(tmp_path: Path, **kw: int):
    corpus = make_corpus(
        tmp_path / "dicom",
        patients=kw.get("patients", 2),
        studies_per_patient=1,
        series_per_study=kw.get("series", 2),
        instances_per_series=kw.get("instances", 3),
        canaries=True,
    )
    s = Session(tmp_path / "s.db")
    s.ingest(tmp_path / "dicom", workers=1, progress=False)
    s.anonymize(None)
    return corpus, s


def _no_canary(corpus, files: list[Path]) -> None:
    assert files
    for f in files:
        data = f.read_bytes()
        leaked = [c for c in corpus.canaries if c.encode() in data]
        assert not leaked, f"{f.name} holds {leaked[:3]}"


def test_export_to_orthanc_sends_only_verified_clean_files(pacs: Orthanc, tmp_path: Path) -> None:
    corpus, s = _anonymized(tmp_path)
    with s:
        r = s.export(pacs.url, safe=False, workers=1, progress=False)
        assert r.ok, r.failed
        assert (
            r.exported == len(corpus.paths) and r.destination == f"dicom://{Peer.parse(pacs.url)}"
        )
        rows = s.sql("SELECT * FROM exports WHERE dest = ?", [r.destination])
        assert rows.height == r.exported and set(rows["status"]) == {"ok"}
        # the peer holds exactly the pseudonymised instances the manifest names
        assert sorted(pacs.sop_uids()) == sorted(rows["SOPInstanceUID"].to_list())
        _no_canary(corpus, [p for p in (pacs.root / "storage").rglob("*") if p.is_file()])
        sent = s.sql("SELECT status, count(*) FROM transfers WHERE direction = 'send' GROUP BY 1")
        assert sent.rows() == [("ok", r.exported)]
        again = s.export(pacs.url, safe=False, workers=1, progress=False)
        assert (again.exported, again.already_done) == (0, r.exported)
        with pytest.raises(ConfigError, match="`verify` must be True"):
            s.export(pacs.url, verify=False)


def test_export_excluded_files_are_not_sent(pacs: Orthanc, tmp_path: Path) -> None:
    """With ``safe=True`` the secondary captures (burned-in text risk) stay home."""
    corpus, s = _anonymized(tmp_path, patients=3)
    with s:
        r = s.export(pacs.url, workers=1, progress=False)
        assert r.exported + r.excluded.height == len(corpus.paths)
        assert len(pacs.instances()) == r.exported


def test_export_transcodes_for_a_peer_that_refuses_compression(
    receiver: StoreSCP, tmp_path: Path
) -> None:
    """storescp accepts only native syntaxes by default: compressed files are decoded."""
    corpus, s = _anonymized(tmp_path, patients=3)
    with s:
        compressed = s.sql(
            "SELECT count(*) FROM instances WHERE transfer_syntax NOT IN "
            "('1.2.840.10008.1.2', '1.2.840.10008.1.2.1')"
        ).item()
        assert compressed > 0
        r = s.export(receiver.url, safe=False, workers=1, progress=False)
        assert r.ok, r.failed
        files = receiver.files()
        assert len(files) == r.exported == len(corpus.paths)
        syntaxes = {str(pydicom.dcmread(f).file_meta.TransferSyntaxUID) for f in files}
        assert syntaxes <= {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
        _no_canary(corpus, files)


def test_export_to_wrong_ae_title_fails_clearly(pacs: Orthanc, tmp_path: Path) -> None:
    _, s = _anonymized(tmp_path, patients=1)
    with s:
        with pytest.raises(NetworkError, match="association rejected"):
            s.export(pacs.url.replace("ORTHANC@", "WRONG@"), safe=False, workers=1)
        assert len(pacs.instances()) == 0
        r = s.export(pacs.url, safe=False, workers=1, progress=False)
        assert r.ok and r.exported == len(pacs.instances()) > 0


def test_send_timeout_then_resume(receiver: StoreSCP, tmp_path: Path) -> None:
    corpus, s = _anonymized(tmp_path, patients=1)
    url = receiver.url + "?timeout=2"
    with s:
        receiver.freeze()
        try:
            r = s.export(url, safe=False, workers=1, progress=False)
        except NetworkError as exc:  # no association at all: nothing was sent
            assert "could not connect" in exc.reason or "timed out" in exc.reason
        else:
            assert r.exported == 0 and r.failed.height == len(corpus.paths)
        finally:
            receiver.thaw()
        r = s.export(url, safe=False, workers=1, progress=False)
        assert r.ok and r.exported == len(corpus.paths)
        assert len(receiver.files()) == len(corpus.paths)


def test_peer_killed_mid_transfer_then_resume(tmp_path: Path) -> None:
    """Kill storescp after a few files; a second export sends only the rest."""
    from gantry.testing._servers import missing

    if missing("storescp"):
        pytest.skip(missing("storescp"))
    corpus, s = _anonymized(tmp_path, patients=2, series=2, instances=10)
    total = len(corpus.paths)
    folder = tmp_path / "peer"
    with s:
        with storescp(folder) as scp:
            import gantry.net._send as send_mod

            calls = {"n": 0}
            original = send_mod._send_on

            def counting_send(assoc, queue, done):  # kill the peer after 5 files
                def done_and_maybe_kill(o):
                    done(o)
                    calls["n"] += 1
                    if calls["n"] == 5:
                        scp.kill()

                return original(assoc, queue, done_and_maybe_kill)

            send_mod._send_on = counting_send
            try:
                r = s.export(scp.url + "?timeout=5", safe=False, workers=1, progress=False)
            finally:
                send_mod._send_on = original
            assert 5 <= r.exported < total
            assert r.failed.height == total - r.exported
            # the file in flight when the peer dies gets "no answer"; the rest cannot connect
            assert r.failed["reason"].str.contains("connect|connection lost|no answer").all()
            port = scp.port
        with storescp(folder, port=port) as scp2:
            r2 = s.export(scp2.url, safe=False, workers=1, progress=False)
            assert r2.ok and r2.exported + r.exported == total
            assert r2.already_done == r.exported
            ok = s.sql(
                "SELECT file_id FROM exports WHERE dest = ? AND status = 'ok'", [r2.destination]
            )
            assert ok.height == total and ok["file_id"].n_unique() == total
            uids = _sop_uids(scp2.files())
            assert len(set(uids)) == total


def test_no_phi_in_log_lines(pacs: Orthanc, tmp_path: Path, move_port: int, caplog) -> None:
    corpus = _fill(pacs, tmp_path / "dicom", patients=1)
    caplog.set_level(logging.INFO)
    with Session(tmp_path / "s.db") as s:
        s.pull(pacs.url, query={"PatientID": corpus.patients[0].patient_id}, port=move_port)
        s.anonymize(None)
        s.export(pacs.url, safe=False, workers=1, progress=False)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "pulled" in text and "sent" in text
    assert not [c for c in corpus.canaries if c in text]
    assert not [u for u in _sop_uids(corpus.paths) if u in text]
