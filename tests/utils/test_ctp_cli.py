"""``gantry ctp convert``, ``convert_file`` and ``python -m gantry.utils.ctp_parser``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from gantry.cli import cli
from gantry.config import load_config
from gantry.utils import CTPScriptError, convert_file

# The reference scripts sit in ../shared/reference/ctp/ beside the clone (CI has them; a
# user's clone does not): their tests skip without them. GANTRY_REFERENCE names another place.
REFERENCE = Path(
    os.environ.get("GANTRY_REFERENCE")
    or Path(__file__).resolve().parents[2].parent / "shared" / "reference"
)
CTP = REFERENCE / "ctp"


def script_path(name: str) -> Path:
    path = CTP / name
    if not path.is_file():
        pytest.skip(f"reference CTP scripts not beside the clone ({CTP})")
    return path


def test_cli_converts_pixel_script_with_markdown_report(tmp_path: Path) -> None:
    out = tmp_path / "machines.yaml"
    src = script_path("DicomPixelAnonymizer.script")
    result = CliRunner().invoke(cli, ["ctp", "convert", str(src), str(out)])
    assert result.exit_code == 0, result.output
    assert "52 signatures in, 48 converted" in result.output
    cfg = load_config(out)
    assert len(cfg.machines) == 49
    text = out.read_text()
    assert text.startswith("# Gantry config v2 converted from the CTP DicomPixelAnonymizer")
    assert '#   line 132: { Modality.equals("US")' in text  # not converted: listed as a comment
    report = (tmp_path / "machines.report.md").read_text()
    assert "## Not converted (4)" in report and "## Approximate" in report


def test_cli_header_script_with_yaml_report(tmp_path: Path) -> None:
    out = tmp_path / "cfg.yaml"
    rep = tmp_path / "sub" / "report.yaml"
    src = script_path("example-ctp-dicom-anonymizer.script")
    result = CliRunner().invoke(
        cli, ["ctp", "convert", str(src), str(out), "--kind", "header", "--report", str(rep)]
    )
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(rep.read_text())
    assert data["kind"] == "header" and data["skipped"] == 764
    assert data["functions"]["@remove"]["mapped"] == 184
    assert [u["function"] for u in data["unmapped"]] == ["@always"]
    assert load_config(out).uid_root == "1.2.840.113654.2.70.1"


def test_cli_reports_malformed_script_with_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.script"
    bad.write_text('Dose\n{ Manufacturer.equals("A") *\n  Rows.equals("1" }\n(0,0,1,1)\n')
    out = tmp_path / "out.yaml"
    result = CliRunner().invoke(cli, ["ctp", "convert", str(bad), str(out)])
    assert result.exit_code == 2
    assert "error: `line 3, column 19` must be ')' closing equals(" in result.output
    assert str(bad) in result.output
    assert not out.exists()
    # a pixel script read as a header script is not XML
    result = CliRunner().invoke(cli, ["ctp", "convert", str(bad), str(out), "--kind", "header"])
    assert result.exit_code == 2 and "well-formed XML" in result.output


def test_convert_file_detects_kind(tmp_path: Path) -> None:
    src = script_path("DicomServiceAnonymizer.script")
    report = convert_file(src, tmp_path / "a.yaml")
    assert report.kind == "header" and report.source == str(src)
    assert load_config(tmp_path / "a.yaml").phi_tags["00080050"].action.value == "HASH"
    bad = tmp_path / "bad.script"
    bad.write_text("<script>\n<e en='T' t='00080080'>@remove()</script>")
    with pytest.raises(CTPScriptError) as info:
        convert_file(bad, tmp_path / "b.yaml")
    assert info.value.line == 2 and info.value.source == str(bad)


def test_module_runs_as_script(tmp_path: Path) -> None:
    out = tmp_path / "px.yaml"
    src = script_path("example-dicom-pixel-anonymizer.script")
    proc = subprocess.run(
        [sys.executable, "-m", "gantry.utils.ctp_parser", str(src), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no runpy double-import warning
    assert "44 signatures in, 41 converted" in proc.stdout
    assert len(load_config(out).machines) == 42
    assert (tmp_path / "px.report.md").is_file()
