"""Plugins through entry points: a real distribution on ``sys.path``, discovered and used."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from gantry import Session
from gantry.audit import unresolved
from gantry.cli import cli
from gantry.errors import ConfigError, PluginError
from gantry.ocr import get_engine
from gantry.plugins import (
    AuditRulePlugin,
    Exporter,
    PixelDetector,
    PlanActionPlugin,
    PluginKind,
    discover,
    load_plugin,
    load_plugins,
    refresh,
)
from gantry.testing import make_instance, make_plugin_distribution

SITE_RULES = """
    import numpy as np
    import polars as pl

    from gantry.ocr import TextBox
    from gantry.plugins import AuditRulePlugin, PlanActionPlugin

    # kept by every profile: findings stay unresolved, so they block a safe export
    CT_MODALITY = AuditRulePlugin(
        id="site-ct-modality", severity="high", title="a CT instance (site policy)",
        message="site policy: CT instances need sign-off",
        where=(pl.col("keyword") == "Modality") & (pl.col("value") == "CT"),
    )

    def accession() -> AuditRulePlugin:  # a factory: built when first loaded
        return AuditRulePlugin(
            id="site-accession", severity="medium", title="an accession number",
            message="site policy: accession number present",
            where=lambda: (pl.col("keyword") == "AccessionNumber") & pl.col("has_value"),
        )

    UPPER = PlanActionPlugin("upper", "upper-cases the value", str.upper)

    def _fail(value):
        raise KeyError(value)

    FAILING = PlanActionPlugin("failing", "raises", _fail)

    class BrightBox:
        name = "bright-box"

        def __init__(self, *, min_confidence: float = 0.5) -> None:
            self.min_confidence = min_confidence

        def read(self, image):
            grey = image if image.ndim == 2 else image.max(axis=2)
            rows, cols = np.nonzero(grey > 200)
            if rows.size == 0:
                return []
            return [TextBox(int(rows.min()), int(rows.max()) + 1, int(cols.min()),
                            int(cols.max()) + 1, 1.0, "BRIGHT")]

    class Folder:
        name = "folder"

        def send(self, folder, destination, **options):
            import shutil
            from pathlib import Path

            files = sorted(folder.rglob("*.dcm"))
            Path(destination).mkdir(parents=True, exist_ok=True)
            for i, path in enumerate(files):
                shutil.copyfile(path, Path(destination) / f"{i}.dcm")
            return len(files)
"""

GROUPS_OK = {
    "gantry.audit_rules": {
        "site-ct-modality": "site_rules:CT_MODALITY",
        "site-accession": "site_rules:accession",
    },
    "gantry.plan_actions": {"upper": "site_rules:UPPER"},
    "gantry.pixel_detectors": {"bright-box": "site_rules:BrightBox"},
    "gantry.exporters": {"folder": "site_rules:Folder"},
}


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Install a plugin distribution for the test (on ``sys.path``); undone afterwards."""
    modules: list[str] = []

    def _install(name: str, mods: dict[str, str], eps: dict[str, dict[str, str]]) -> Path:
        root = make_plugin_distribution(tmp_path / name, name, modules=mods, entry_points=eps)
        monkeypatch.syspath_prepend(str(root))
        modules.extend(mods)
        refresh()
        return root

    yield _install
    for m in modules:
        sys.modules.pop(m, None)
    refresh()


def test_discovery_lists_every_kind_without_importing(install: object) -> None:
    install("site-plugins", {"site_rules": SITE_RULES}, GROUPS_OK)  # type: ignore[operator]
    found = {(p.kind, p.name, p.distribution) for p in discover()}
    assert found >= {
        (PluginKind.AUDIT_RULE, "site-ct-modality", "site-plugins"),
        (PluginKind.AUDIT_RULE, "site-accession", "site-plugins"),
        (PluginKind.PLAN_ACTION, "upper", "site-plugins"),
        (PluginKind.PIXEL_DETECTOR, "bright-box", "site-plugins"),
        (PluginKind.EXPORTER, "folder", "site-plugins"),
    }
    assert "site_rules" not in sys.modules  # discovery reads metadata only


def test_each_kind_loads_with_its_type(install: object, tmp_path: Path) -> None:
    install("site-plugins", {"site_rules": SITE_RULES}, GROUPS_OK)  # type: ignore[operator]
    rules = load_plugins("audit_rule")
    assert [r.id for r in rules] == ["site-accession", "site-ct-modality"]
    assert all(isinstance(r, AuditRulePlugin) for r in rules)
    action = load_plugin("plan_action", "upper")
    assert isinstance(action, PlanActionPlugin) and action.apply("ct") == "CT"
    exporter = load_plugin("exporter", "folder")
    assert isinstance(exporter, Exporter)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.dcm").write_bytes(b"x")
    assert exporter.send(tmp_path / "out", str(tmp_path / "copy")) == 1
    # a pixel detector is an OCR engine by its entry-point name
    engine = get_engine("bright-box")
    assert isinstance(engine, PixelDetector)
    image = np.zeros((40, 60), dtype=np.uint8)
    image[5:9, 10:30] = 255
    assert [b.as_zone() for b in engine.read(image)] == [(5, 9, 10, 30)]
    with pytest.raises(ConfigError, match="'bright-box'"):
        get_engine("no-such-engine")


def test_plugin_audit_rule_produces_findings_and_blocks_export(
    install: object, tmp_path: Path
) -> None:
    install("site-plugins", {"site_rules": SITE_RULES}, GROUPS_OK)  # type: ignore[operator]
    make_instance(tmp_path / "dicom" / "ct.dcm", modality="CT")
    make_instance(tmp_path / "dicom" / "mr.dcm", modality="MR", seed=1)
    with Session(tmp_path / "p.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        report = s.audit()
        df = report.to_polars()
        mine = df.filter(df["rule"].cast(str).str.starts_with("site-")).sort("rule")
        ct_id = s.sql("SELECT file_id FROM instances WHERE Modality = 'CT'").item()
        rows = mine.select("file_id", "rule", "severity", "message", "resolved").rows()
        assert rows[-1] == (
            ct_id,
            "site-ct-modality",
            "high",
            "site policy: CT instances need sign-off",
            False,
        )
        assert [r[1] for r in rows].count("site-ct-modality") == 1  # the MR is not flagged
        accession = [r for r in rows if r[1] == "site-accession"]
        assert len({r[0] for r in accession}) == 2  # both instances (also in sequences)
        assert all(r[4] for r in accession)  # the profile removes it: resolved
        assert ("site-ct-modality", ct_id) in {
            (r, f) for f, r in report.unresolved().select("file_id", "rule").rows()
        }
        # the export's own check (kept elements only) agrees
        blocked = unresolved(s.store)
        assert blocked.filter(blocked["rule"] == "site-ct-modality")["file_id"].to_list() == [ct_id]
        s.anonymize()
        exported = s.export(tmp_path / "out")  # safe=True: the CT stays out
        assert exported.excluded["file_id"].to_list() == [ct_id]
        assert "site policy: CT instances need sign-off" in exported.excluded["reason"].item()
        assert exported.exported == 1  # the MR
        assert s.save_analysis(report) == len(report)
        assert s.sql("SELECT count(*) FROM findings WHERE rule = 'site-ct-modality'").item() == 1


def test_cli_lists_plugins(install: object) -> None:
    install("site-plugins", {"site_rules": SITE_RULES}, GROUPS_OK)  # type: ignore[operator]
    result = CliRunner().invoke(cli, ["plugins", "--format", "csv"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "kind,name,distribution,version,target,status"
    assert "audit_rule,site-ct-modality,site-plugins,0.1.0,site_rules:CT_MODALITY,ok" in lines
    assert "pixel_detector,bright-box,site-plugins,0.1.0,site_rules:BrightBox,ok" in lines


BROKEN = {
    "import error": ({"broken_a": "raise RuntimeError('no config file')"}, "broken_a:RULE",
                     r"could not be imported \(RuntimeError: no config file\)"),
    "missing module": ({}, "not_a_module_xyz:RULE", "could not be imported"),
    "wrong type": ({"broken_b": "RULE = 42"}, "broken_b:RULE", "expected AuditRulePlugin, got int"),
    "clashing id": (
        {"broken_c": "import polars as pl\nfrom gantry.plugins import AuditRulePlugin\n"
                     "RULE = AuditRulePlugin('person-name', 'high', 't', 'm', pl.lit(True))"},
        "broken_c:RULE", "must differ from the built-in rules",
    ),
    "bad severity": (
        {"broken_d": "import polars as pl\nfrom gantry.plugins import AuditRulePlugin\n"
                     "RULE = AuditRulePlugin('site-d', 'urgent', 't', 'm', pl.lit(True))"},
        "broken_d:RULE", "`severity` must be one of",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_plugin_is_named(case: str, install: object, tmp_path: Path) -> None:
    mods, target, reason = BROKEN[case]
    eps = {"gantry.audit_rules": {"bad-rule": target}}
    install("bad-plugins", mods, eps)  # type: ignore[operator]
    make_instance(tmp_path / "dicom" / "ct.dcm")
    with Session(tmp_path / "p.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        with pytest.raises(PluginError, match=reason) as info:
            s.audit()
    err = info.value
    assert (err.name, err.group, err.distribution) == (
        "bad-rule",
        "gantry.audit_rules",
        "bad-plugins",
    )
    assert str(err).startswith("plugin `bad-rule` (gantry.audit_rules) from bad-plugins failed:")
    result = CliRunner().invoke(cli, ["plugins"])
    assert result.exit_code == 1
    assert "error: plugin `bad-rule` (audit_rule):" in result.output


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("NO_COLUMN", r"`where` is not valid \(ColumnNotFoundError"),
        ("NOT_BOOL", "must be a Boolean"),
    ],
)
def test_rule_expression_must_fit_the_elements(
    target: str, reason: str, install: object, tmp_path: Path
) -> None:
    source = (
        "import polars as pl\nfrom gantry.plugins import AuditRulePlugin\n"
        "NO_COLUMN = AuditRulePlugin('site-e', 'low', 't', 'm', pl.col('nope') == 'x')\n"
        "NOT_BOOL = AuditRulePlugin('site-f', 'low', 't', 'm2', pl.col('vr'))\n"
    )
    eps = {"gantry.audit_rules": {"e": f"broken_e:{target}"}}
    install("e-plugins", {"broken_e": source}, eps)  # type: ignore[operator]
    make_instance(tmp_path / "dicom" / "ct.dcm")
    with Session(tmp_path / "p.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        with pytest.raises(PluginError, match=reason) as info:
            s.audit()
    assert (info.value.name, info.value.distribution) == ("e", "e-plugins")


def test_two_distributions_declaring_one_name_is_an_error(install: object) -> None:
    eps = {"gantry.plan_actions": {"upper": "site_rules:UPPER"}}
    install("first", {"site_rules": SITE_RULES}, eps)  # type: ignore[operator]
    install("second", {}, eps)  # type: ignore[operator]
    with pytest.raises(
        PluginError, match=r"more than one distribution \((first, second|second, first)\)"
    ):
        load_plugin("plan_action", "upper")


def test_pixel_detector_plugin_scans_like_an_ocr_engine(install: object, tmp_path: Path) -> None:
    install("site-plugins", {"site_rules": SITE_RULES}, GROUPS_OK)  # type: ignore[operator]
    make_instance(tmp_path / "dicom" / "us.dcm", modality="US")
    with Session(tmp_path / "p.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        result = s.scan_pixels(engine="bright-box", workers=1, progress=False)
        assert (result.scanned, result.failed) == (1, 0) and result.regions >= 1
        engines = s.sql("SELECT DISTINCT engine FROM ocr_scans")["engine"].to_list()
        assert engines == ["bright-box"]
        assert s.sql("SELECT count(*) FROM text_regions").item() == result.regions


def test_plan_action_plugin_computes_replace_values(install: object, tmp_path: Path) -> None:
    import pydicom

    install("site-plugins", {"site_rules": SITE_RULES}, GROUPS_OK)  # type: ignore[operator]
    make_instance(tmp_path / "dicom" / "mr.dcm", modality="MR", SeriesDescription="axial head")
    config = {"phi_tags": {"0008,103E": {"action": "REPLACE", "plugin": "upper"}}}
    with Session(tmp_path / "p.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        s.anonymize(config)
        row = s.sql("SELECT action, rule, new_value FROM plan WHERE tag = '0008103E'").row(0)
        assert row == ("R", "plugin:upper", "AXIAL HEAD")
        s.export(tmp_path / "out")
    (written,) = (tmp_path / "out").rglob("*.dcm")
    assert pydicom.dcmread(written).SeriesDescription == "AXIAL HEAD"


@pytest.mark.parametrize(
    ("entry", "error", "match"),
    [
        ({"action": "REPLACE", "plugin": "nope"}, ConfigError, r"phi_tags\.0008,103E\.plugin"),
        ({"action": "REMOVE", "plugin": "upper"}, ConfigError, "REPLACE"),
        ({"action": "REPLACE", "plugin": "broken"}, PluginError, "plugin `broken`"),
    ],
)
def test_plan_action_plugin_mistakes_are_named(
    entry: dict[str, str], error: type[Exception], match: str, install: object
) -> None:
    from gantry.config import load_config

    eps = {"gantry.plan_actions": {"upper": "site_rules:UPPER", "broken": "site_rules:CT_MODALITY"}}
    install("site-plugins", {"site_rules": SITE_RULES}, eps)  # type: ignore[operator]
    with pytest.raises(error, match=match):
        load_config({"phi_tags": {"0008,103E": entry}})


def test_plan_action_plugin_that_raises_fails_the_plan_naming_it(
    install: object, tmp_path: Path
) -> None:
    eps = {"gantry.plan_actions": {"failing": "site_rules:FAILING"}}
    install("site-plugins", {"site_rules": SITE_RULES}, eps)  # type: ignore[operator]
    make_instance(tmp_path / "dicom" / "mr.dcm", modality="MR", SeriesDescription="axial head")
    with Session(tmp_path / "p.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        with pytest.raises(PluginError, match=r"`apply` failed \(KeyError\)") as info:
            s.anonymize({"phi_tags": {"0008,103E": {"action": "REPLACE", "plugin": "failing"}}})
    assert "axial" not in str(info.value).lower()  # the value is never quoted


def test_exporter_plugin_receives_the_verified_export(install: object, tmp_path: Path) -> None:
    import pydicom

    install("site-plugins", {"site_rules": SITE_RULES}, GROUPS_OK)  # type: ignore[operator]
    make_instance(tmp_path / "dicom" / "mr.dcm", modality="MR", PatientName="Canary^Zed")
    target = tmp_path / "delivered"
    with Session(tmp_path / "p.db") as s:
        s.ingest(tmp_path / "dicom", workers=1, progress=False)
        result = s.export(f"plugin://folder/{target}", workers=1)
        assert (result.plugin, result.sent, result.exported) == ("folder", 1, 1)
        assert result.dest.parent.name.endswith(".outbox")  # staged beside the catalog
        details = s.sql("SELECT details, counts FROM runs WHERE kind = 'send'").row(0)
        assert '"plugin": "folder"' in details[0] and '"sent": 1' in details[1]
        with pytest.raises(PluginError, match="no such plugin"):
            s.export(f"plugin://nope/{target}")
    (delivered,) = target.iterdir()
    assert b"Canary" not in delivered.read_bytes()
    assert pydicom.dcmread(delivered).PatientName != "Canary^Zed"
