"""``gantry ctp convert``, ``convert_file``, ``python -m gantry.ctp`` and its old name."""

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


# Our own scripts in CTP's two syntaxes: the CLI tests below always run on them.
PIXEL = """\
Acme ultrasound
  { Manufacturer.containsIgnoreCase("ACME") * Rows.equals("480") }
  (0,0,640,40)
Dose reports
  { SeriesDescription.containsIgnoreCase("Dose") + ImageType.containsIgnoreCase("SCREEN") }
  (0,0,512,110) (0,400,512,112)
No regions
  { Modality.equals("US") }
"""
HEADER = """\
<script>
<p t="UIDROOT">1.2.840.113654.2.70.1</p>
<p t="DATEINC">-30</p>
<e en="T" t="00080018" n="SOPInstanceUID">@hashuid(@UIDROOT,this)</e>
<e en="T" t="00080020" n="StudyDate">@incrementdate(this,@DATEINC)</e>
<e en="T" t="00080050" n="AccessionNumber">@hash(this,16)</e>
<e en="T" t="00080080" n="InstitutionName">@remove()</e>
<e en="F" t="00080008" n="ImageType">@keep()</e>
<e en="T" t="00081030" n="StudyDescription">@keep()</e>
<e en="T" t="00120063" n="DeidentificationMethod">@always()CTP Default</e>
<e en="T" t="00400275" n="RequestAttributesSequence">@always()@process()</e>
<r en="T" t="privategroups">Remove private groups</r>
</script>
"""


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_cli_converts_pixel_script_with_markdown_report(tmp_path: Path) -> None:
    out = tmp_path / "machines.yaml"
    src = _write(tmp_path, "pixel.script", PIXEL)
    result = CliRunner().invoke(cli, ["ctp", "convert", str(src), str(out)])
    assert result.exit_code == 0, result.output
    assert "3 signatures in, 2 converted (0 approximate), 1 not converted" in result.output
    cfg = load_config(out)
    assert [m.match.conditions for m in cfg.machines] == [
        None,
        'SeriesDescription.containsIgnoreCase("Dose") + ImageType.containsIgnoreCase("SCREEN")',
    ]
    assert cfg.machines[1].redaction_zones == ((0, 110, 0, 512), (400, 512, 0, 512))
    text = out.read_text()
    assert text.startswith("# Gantry config v2 converted from the CTP DicomPixelAnonymizer")
    assert '#   line 8: { Modality.equals("US") }' in text  # not converted: listed as a comment
    report = (tmp_path / "machines.report.md").read_text()
    assert "## Not converted (1)" in report and "the signature has no regions" in report


def test_cli_header_script_with_yaml_report(tmp_path: Path) -> None:
    out = tmp_path / "cfg.yaml"
    rep = tmp_path / "sub" / "report.yaml"
    src = _write(tmp_path, "anonymizer.script", HEADER)
    result = CliRunner().invoke(
        cli, ["ctp", "convert", str(src), str(out), "--kind", "header", "--report", str(rep)]
    )
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(rep.read_text())
    assert data["kind"] == "header" and data["skipped"] == 1
    assert data["functions"]["@remove"]["mapped"] == 1
    assert [u["function"] for u in data["unmapped"]] == ["@always"]
    cfg = load_config(out)
    assert cfg.uid_root == "1.2.840.113654.2.70.1"
    assert (cfg.date_jitter.min_days, cfg.date_jitter.max_days) == (-30, -30)
    assert cfg.phi_tags["00080050"].action.value == "HASH"
    assert cfg.keep == ("00081030",)


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
    src = _write(tmp_path, "service.script", HEADER)
    report = convert_file(src, tmp_path / "a.yaml")
    assert report.kind == "header" and report.source == str(src)
    assert load_config(tmp_path / "a.yaml").phi_tags["00080050"].action.value == "HASH"
    pixel = convert_file(_write(tmp_path, "p.script", PIXEL), tmp_path / "p.yaml")
    assert pixel.kind == "pixel" and pixel.entries_out == 2
    bad = tmp_path / "bad.script"
    bad.write_text("<script>\n<e en='T' t='00080080'>@remove()</script>")
    with pytest.raises(CTPScriptError) as info:
        convert_file(bad, tmp_path / "b.yaml")
    assert info.value.line == 2 and info.value.source == str(bad)


@pytest.mark.parametrize("module", ["gantry.ctp", "gantry.utils.ctp_parser"])
def test_module_runs_as_script(tmp_path: Path, module: str) -> None:
    # gantry.utils.ctp_parser is the original README's command: python -m … IN OUT
    out = tmp_path / "output_rules.yaml"
    src = _write(tmp_path, "anonymizer.script", PIXEL)
    proc = subprocess.run(
        [sys.executable, "-m", module, str(src), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no runpy double-import warning
    assert "3 signatures in, 2 converted" in proc.stdout
    assert len(load_config(out).machines) == 2
    assert (tmp_path / "output_rules.report.md").is_file()


@pytest.mark.parametrize("module", ["gantry.ctp", "gantry.utils.ctp_parser"])
def test_module_help_names_the_command_run(module: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", module, "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: python -m {module} ")


def test_old_names_are_the_new_objects() -> None:
    import gantry.ctp
    import gantry.utils
    import gantry.utils.ctp_parser

    for old in (gantry.utils, gantry.utils.ctp_parser):
        for name in old.__all__:
            assert getattr(old, name) is getattr(gantry.ctp, name), name


def test_reference_scripts_through_the_cli(tmp_path: Path) -> None:
    """The reference scripts (skipped where ../shared/reference/ is not beside the clone)."""
    src = script_path("DicomPixelAnonymizer.script")
    out = tmp_path / "machines.yaml"
    result = CliRunner().invoke(cli, ["ctp", "convert", str(src), str(out)])
    assert result.exit_code == 0, result.output
    assert "52 signatures in, 52 converted (0 approximate), 0 not converted" in result.output
    assert len(load_config(out).machines) == 52
    report = (tmp_path / "machines.report.md").read_text()
    assert "## Not converted (0)" in report
    rep = tmp_path / "header.yaml"
    src = script_path("example-ctp-dicom-anonymizer.script")
    result = CliRunner().invoke(
        cli, ["ctp", "convert", str(src), str(tmp_path / "h.yaml"), "--report", str(rep)]
    )
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(rep.read_text())
    assert data["kind"] == "header" and data["skipped"] == 764
    assert data["functions"]["@remove"]["mapped"] == 184
    proc = subprocess.run(
        [sys.executable, "-m", "gantry.utils.ctp_parser", str(script_path(
            "example-dicom-pixel-anonymizer.script")), str(tmp_path / "px.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "44 signatures in, 44 converted (0 approximate)" in proc.stdout
    assert len(load_config(tmp_path / "px.yaml").machines) == 44
