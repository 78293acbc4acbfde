"""The earlier Gantry project's README, example by example, runs as written.

Its users come with scripts and configs written against it, so its examples are
a compatibility spec. They are copied here verbatim (the tests never read
``../shared``); only the placeholder folders ``/path/to/...`` are replaced by
folders of synthetic data, and ``"ANON_123"`` by the pseudonym read from the
exported files, as a user would find it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from gantry.testing import decode_pixels, make_instance

# -- the examples, verbatim -------------------------------------------------------------------

INIT = """\
from gantry import Session

# Initialize a new session (creates 'gantry.db' by default)
session = Session("my_project.db")
"""

INGEST = """\
session.ingest("/path/to/dicom/data")
session.save() # Persist the index to disk
"""

ANALYZE = """\
# Create a default configuration file (v2.0 YAML)
session.create_config("config.yaml")

# Run an audit
report = session.audit("config.yaml")
session.save_analysis(report)

print(f"Found {len(report)} potential PHI issues.")
"""

ANONYMIZE_EXPORT = """\
# Apply remediation rules in-memory
session.anonymize("config.yaml")

# Export only safe (clean) data to a new folder
# Compression="j2k" optionally compresses output to JPEG 2000
session.export("/path/to/export_clean", safe=True, compression="j2k")
"""

CONFIG_YAML = """\

# 1. Privacy Profile (Optional)
# Inherit standard rules from 'basic' or 'comprehensive' profiles.
privacy_profile: "basic"

# 2. Date Jitter
# Shift all dates by a random amount within this range (consistent per Patient).
date_jitter:
  min_days: -30
  max_days: -10

# 3. Private Tags
# Whether to remove all private dicom tags (odd groups).
remove_private_tags: true

# 4. Custom PHI Tags (Overrides Profile)
phi_tags:
  "0010,0010": { "action": "REMOVE", "name": "PatientName" }
  "0010,0020": { "action": "REPLACE", "name": "PatientID", "value": "ANON_{id}" }

# 5. Pixel Redaction Rules (Machine Specific)
machines:
  - serial_number: "DEV12345"
    model_name: "UltraSound Pro"
    redaction_zones:
      - [0, 50, 0, 800] # ROI: [row_start, row_end, col_start, col_end]
"""

LOCK = """\
# Enable encryption (generates 'gantry.key')
session.enable_reversible_anonymization()

# Lock identities BEFORE anonymization to store encrypted original data
session.lock_identities("PATIENT_123")
"""

RECOVER = """\
session.recover_patient_identity("ANON_123")
"""

# -- synthetic data ---------------------------------------------------------------------------

US_ROWS, US_COLUMNS = 120, 900  # wider than the README's zone (columns 0..800)


def make_data(root: Path) -> Path:
    """Three patients: PATIENT_123 on the README's ultrasound unit, two others."""
    data = root / "dicom"
    make_instance(
        data / "us" / "a.dcm",
        modality="US",
        rows=US_ROWS,
        columns=US_COLUMNS,
        seed=1,
        PatientID="PATIENT_123",
        DeviceSerialNumber="DEV12345",
        ManufacturerModelName="UltraSound Pro",
    )
    make_instance(data / "ct" / "b.dcm", modality="CT", seed=2, PatientID="PATIENT_456")
    make_instance(data / "mr" / "c.dcm", modality="MR", seed=3, PatientID="PATIENT_789")
    return data


def localise(code: str, data: Path, export: Path) -> str:
    """The example with its placeholder folders pointing at the test's folders."""
    return code.replace("/path/to/dicom/data", str(data)).replace(
        "/path/to/export_clean", str(export)
    )


def run_readme(root: Path, *, lock_before: bool) -> dict[str, Any]:
    """Run the README's examples in order, in ``root`` (as a user's working folder)."""
    data = root / "dicom" if (root / "dicom").is_dir() else make_data(root)
    export = root / "export_clean"
    (root / "config.yaml").write_text(CONFIG_YAML, encoding="utf-8")
    steps = [INIT, INGEST, ANALYZE]
    steps += [LOCK, ANONYMIZE_EXPORT] if lock_before else [ANONYMIZE_EXPORT, LOCK]
    namespace: dict[str, Any] = {}
    cwd = Path.cwd()
    os.chdir(root)
    try:
        for step in steps:
            exec(localise(step, data, export), namespace)  # noqa: S102 - the README's own code
        session = namespace["session"]
        exported = sorted(export.rglob("*.dcm"))
        found = {str(pydicom.dcmread(p).PatientID): p for p in exported}
        # the user finds the pseudonym of PATIENT_123 in the exported file of its US image
        (us_file,) = [p for p in exported if pydicom.dcmread(p).Modality == "US"]
        pseudonym = str(pydicom.dcmread(us_file).PatientID)
        identity = eval(  # noqa: S307 - the README's own expression
            RECOVER.strip().replace("ANON_123", pseudonym), namespace
        )
        result = {
            "report": len(namespace["report"]),
            "pseudonym": pseudonym,
            "identity": identity,
            "us_file": us_file,
            "found": found,
            "hashes": {p.relative_to(export): _sha(p) for p in exported},
            "plan": session.sql("SELECT * FROM plan ORDER BY ALL"),
        }
        session.close()
        return result
    finally:
        os.chdir(cwd)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- the tests --------------------------------------------------------------------------------


def test_the_example_config_loads_with_the_flat_machine_form(tmp_path: Path) -> None:
    from gantry.config import load_config

    path = tmp_path / "config.yaml"
    path.write_text(CONFIG_YAML, encoding="utf-8")
    cfg = load_config(path)
    assert cfg.privacy_profile == "basic"
    assert (cfg.date_jitter.min_days, cfg.date_jitter.max_days) == (-30, -10)
    assert cfg.remove_private_tags is True
    assert cfg.phi_tags["0010,0010"].action.value == "REMOVE"
    assert cfg.phi_tags["0010,0020"].value == "ANON_{id}"
    (machine,) = cfg.machines
    assert machine.match.serial_number == "DEV12345"
    assert machine.match.model == "UltraSound Pro"
    assert machine.redaction_zones == ((0, 50, 0, 800),)
    assert machine.name == "DEV12345"


@pytest.mark.parametrize("lock_before", [True, False], ids=["lock-before", "lock-after"])
def test_the_quick_start_runs_as_written(tmp_path: Path, lock_before: bool) -> None:
    got = run_readme(tmp_path, lock_before=lock_before)
    assert got["report"] > 0
    assert (tmp_path / "gantry.key").is_file() and (tmp_path / "my_project.db").is_file()
    # PatientID replaced by the config's template, PatientName removed, zone blacked out
    assert sorted(got["found"]) == ["ANON_0001", "ANON_0002", "ANON_0003"]
    us = pydicom.dcmread(got["us_file"])
    assert "PatientName" not in us
    assert us.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.90"  # JPEG 2000 lossless
    pixels = decode_pixels(us)
    assert pixels.shape[:2] == (US_ROWS, US_COLUMNS)
    assert not pixels[0:50, 0:800].any()
    assert pixels[50:, :].any() and pixels[:, 800:].any()  # nothing outside the zone
    for path in got["found"].values():
        assert b"PATIENT_123" not in path.read_bytes()
    # the identity comes back from the pseudonym found in the exported file
    assert got["identity"]["PatientID"] == "PATIENT_123"
    assert got["identity"]["pseudonym"] == got["pseudonym"]


def test_running_the_script_twice_gives_the_same_result(tmp_path: Path) -> None:
    first = run_readme(tmp_path, lock_before=True)
    key = (tmp_path / "gantry.key").read_bytes()
    config = (tmp_path / "config.yaml").read_text(encoding="utf-8")
    second = run_readme(tmp_path, lock_before=True)
    assert (tmp_path / "gantry.key").read_bytes() == key  # loaded, never overwritten
    assert (tmp_path / "config.yaml").read_text(encoding="utf-8") == config
    assert second["report"] == first["report"]
    assert second["plan"].equals(first["plan"])
    assert second["hashes"] == first["hashes"]
    assert second["identity"] == first["identity"]


def test_create_config_keeps_an_existing_file_unless_overwrite(tmp_path: Path) -> None:
    from gantry import Session
    from gantry.config import DEFAULT_CONFIG_YAML

    target = tmp_path / "config.yaml"
    target.write_text(CONFIG_YAML, encoding="utf-8")
    with Session(tmp_path / "s.db") as s:
        assert s.create_config(target) == target
        assert target.read_text(encoding="utf-8") == CONFIG_YAML
        assert s.create_config(target, overwrite=True) == target
        assert target.read_text(encoding="utf-8") == DEFAULT_CONFIG_YAML
        assert s.create_config(tmp_path / "new.yaml").read_text(encoding="utf-8") == (
            DEFAULT_CONFIG_YAML
        )


def test_enable_loads_an_existing_key_and_refuses_a_foreign_one(tmp_path: Path) -> None:
    from gantry import Session
    from gantry.errors import VaultKeyError

    data = make_data(tmp_path)
    with Session(tmp_path / "a.db") as s:
        s.ingest(data, workers=1, progress=False)
        key = s.enable_reversible_anonymization(tmp_path / "a.key")
        s.anonymize()
        s.lock_identities()
        pseudonym = s.sql("SELECT pseudonym FROM identities LIMIT 1")[0, 0]
    text = key.read_bytes()
    with Session(tmp_path / "a.db") as s:  # a new process running the same script
        assert s.enable_reversible_anonymization(tmp_path / "a.key") == key
        assert key.read_bytes() == text
        assert s.recover_patient_identity(pseudonym)["pseudonym"] == pseudonym
    with Session(tmp_path / "b.db") as s:  # another session's key is not this vault's
        s.ingest(data, workers=1, progress=False)
        s.enable_reversible_anonymization(tmp_path / "b.key")
        s.anonymize()
        s.lock_identities()
        with pytest.raises(VaultKeyError, match="holds another key"):
            s.enable_reversible_anonymization(tmp_path / "a.key")
    assert key.read_bytes() == text


def test_builtin_profile_names_are_accepted_wherever_a_config_is(tmp_path: Path) -> None:
    from gantry import Session

    data = make_data(tmp_path)
    with Session(tmp_path / "s.db") as s:
        s.ingest(data, workers=1, progress=False)
        assert len(s.audit("basic")) == len(s.audit(None))
        assert s.preview("research").height > 0
        assert s.anonymize("comprehensive")["rows"].sum() > 0
        assert s.anonymize("basic")["rows"].sum() > 0
        export = s.export(tmp_path / "out", config="basic", workers=1, progress=False)
        # the US image has no redaction zone under the bare profile: excluded, not exported
        assert (export.exported, export.excluded.height) == (2, 1)
        report = s.compliance_report(export, profile="basic")
        assert report.compliant, report.problems
        # a file named like a profile, in the working folder, is still read as a file
        cwd = Path.cwd()
        os.chdir(tmp_path)
        try:
            Path("basic").write_text("privacy_profile: research\n", encoding="utf-8")
            from gantry.config import load_config

            assert load_config("basic").privacy_profile == "research"
        finally:
            os.chdir(cwd)


# -- worker pools from any context ------------------------------------------------------------

SCRIPT = textwrap.dedent(
    """\
    from gantry import Session
    session = Session({db!r})
    result = session.ingest({data!r}, workers=2, progress=False)
    export = session.export({out!r}, workers=2, progress=False)
    print("indexed", result.indexed, "exported", export.exported)
    """
)


def _run(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "GANTRY_EXECUTOR"}
    return subprocess.run(
        [sys.executable, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("how", ["stdin", "dash-c", "script-without-guard", "module"])
def test_worker_pools_start_from_any_context(tmp_path: Path, how: str) -> None:
    data = make_data(tmp_path)
    code = SCRIPT.format(db=str(tmp_path / "s.db"), data=str(data), out=str(tmp_path / "out"))
    if how == "stdin":
        proc = _run(["-"], tmp_path, stdin=code)
    elif how == "dash-c":
        proc = _run(["-c", code], tmp_path)
    elif how == "script-without-guard":
        (tmp_path / "job.py").write_text(code, encoding="utf-8")
        proc = _run([str(tmp_path / "job.py")], tmp_path)
    else:
        (tmp_path / "myjob.py").write_text(code, encoding="utf-8")
        proc = _run(["-m", "myjob"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # three batches of one file on two workers (the US image has no zone: excluded)
    assert "indexed 3 exported 2" in proc.stdout
    assert "BrokenProcessPool" not in proc.stderr
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 2


def test_worker_pools_start_from_jupyter(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    data = make_data(tmp_path)
    code = SCRIPT.format(db=str(tmp_path / "s.db"), data=str(data), out=str(tmp_path / "out"))
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(
        book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    printed = "".join(
        o["text"] for o in book.cells[0].outputs if o.output_type == "stream" and o.name == "stdout"
    )
    assert "indexed 3 exported 2" in printed
    exported = sorted((tmp_path / "out").rglob("*.dcm"))
    assert len(exported) == 2
    assert all(np.asarray(decode_pixels(pydicom.dcmread(p))).size for p in exported)


def test_cli_takes_a_builtin_profile_name_for_config(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gantry.cli import cli

    data = make_data(tmp_path)
    db = str(tmp_path / "s.db")
    runner = CliRunner()
    assert runner.invoke(cli, ["ingest", str(data), "--db", db]).exit_code == 0
    for args in (["audit"], ["preview"], ["anonymize"]):
        result = runner.invoke(cli, [*args, "--db", db, "--config", "research"])
        assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    result = runner.invoke(cli, ["export", str(out), "--db", db, "--config", "research"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        cli, ["report", "compliance", str(out), "--db", db, "--config", "research"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["audit", "--db", db, "--config", "basci"])
    assert result.exit_code == 2
    assert "neither an existing file nor a built-in profile (basic, comprehensive, research)" in (
        result.output
    )
