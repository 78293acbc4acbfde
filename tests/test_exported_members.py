"""The public surface of ``gantry`` is frozen: change this test on purpose, not by accident.

Every public name of ``gantry`` and of each stage module is listed below. A
change to any of them (a name added, renamed or removed) fails this test until
the list is edited in the same commit and ``CHANGELOG.md`` says so under
"Unreleased" (Added, Changed, Deprecated, Removed). Removing a name first goes
through :func:`gantry._deprecation.deprecated` for one minor version.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import gantry
from gantry._deprecation import DEPRECATIONS

PUBLIC_NAMES: dict[str, list[str]] = {
    "gantry.audit": [
        "FINDINGS_SCHEMA",
        "RULES",
        "AuditReport",
        "OcrStatus",
        "Rule",
        "Severity",
        "audit",
        "match_machines",
        "ocr_status",
        "preview",
        "save_findings",
        "unresolved",
    ],
    "gantry.cli": [
        "cli",
        "main",
    ],
    "gantry.cluster": [
        "Backend",
        "DaskExecutor",
        "ENV_VAR",
        "check_shared",
        "connect",
        "open_backend",
    ],
    "gantry.config": [
        "DEFAULT_CONFIG_YAML",
        "Acknowledged",
        "AgePolicy",
        "BurnedIn",
        "Config",
        "DateJitter",
        "Deface",
        "Machine",
        "MachineMatch",
        "PhiTagRule",
        "Pseudonym",
        "SafePrivateTag",
        "TagAction",
        "TagMap",
        "load_config",
        "write_default_config",
    ],
    "gantry.ctp": [
        "CTPScriptError",
        "ConversionReport",
        "ReportItem",
        "convert_file",
        "convert_header_script",
        "convert_pixel_script",
        "default_report_path",
        "detect_kind",
        "main",
        "write_report",
    ],
    "gantry.deface": [
        "DEFACE_SCHEMA",
        "DefacePreview",
        "FacePlane",
        "ShearFit",
        "SliceGeometry",
        "deface_series",
        "fit_face_plane",
        "load_volume",
        "render_deface_preview",
        "side_projection",
        "stack_slices",
    ],
    "gantry.errors": [
        "AuditError",
        "CodecError",
        "ConfigError",
        "DefaceError",
        "ExportError",
        "GantryError",
        "IngestError",
        "MissingDependencyError",
        "NetworkError",
        "PlanError",
        "PluginError",
        "QueryError",
        "RedactionError",
        "SchemaVersionError",
        "StorageError",
        "StoreError",
        "StoreLockedError",
        "StoreNotFoundError",
        "TamperedVaultError",
        "VaultError",
        "VaultKeyError",
    ],
    "gantry.export": [
        "MANIFEST_COLUMNS",
        "ExportResult",
        "run_export",
        "write_maps",
    ],
    "gantry.ingest": [
        "BatchResult",
        "IngestLimits",
        "IngestResult",
        "file_id",
        "ingest_batch",
        "read_batch",
        "run_ingest",
    ],
    "gantry.model": [
        "Collection",
        "Instance",
        "Model",
        "Node",
        "Patient",
        "SaveResult",
        "Series",
        "Study",
        "excluded_file_ids",
        "load_edits",
        "pixel_edit_locations",
        "read_pixel_edit",
    ],
    "gantry.net": [
        "TRANSFERS_TABLE",
        "ListenResult",
        "NetworkExportResult",
        "Peer",
        "PullResult",
        "SendItem",
        "SendOutcome",
        "echo",
        "export_to_peer",
        "find",
        "is_dicom_url",
        "is_web_url",
        "listen",
        "pull",
        "send_files",
        "tls_context",
    ],
    "gantry.nifti": [
        "CONVERSIONS_TABLE",
        "DEFAULT_BIDS_RULES",
        "BidsRule",
        "NiftiResult",
        "load_bids_rules",
        "run_nifti_export",
    ],
    "gantry.ocr": [
        "ENGINES",
        "REGIONS_SCHEMA",
        "SCANS_SCHEMA",
        "IdentityTokens",
        "OcrEngine",
        "ScanResult",
        "TextBox",
        "available_engines",
        "current_regions",
        "current_scans",
        "display_frame",
        "frame_count",
        "get_engine",
        "phi_kinds",
        "sample_frames",
        "scan_file",
        "scan_pixels",
    ],
    "gantry.pixels": [
        "Compression",
        "EncodedPixels",
        "RedactionReport",
        "RedactionResult",
        "Zone",
        "apply_encoded",
        "decode",
        "encode",
        "iter_frames",
        "redact",
        "redact_dataset",
        "verify_redaction",
    ],
    "gantry.plan": [
        "PLAN_SCHEMA",
        "build_plan",
        "date_offset",
        "identity_tokens",
        "remap_uid",
        "uid_map",
    ],
    "gantry.plugins": [
        "GROUPS",
        "AuditRulePlugin",
        "Exporter",
        "PixelDetector",
        "PlanActionPlugin",
        "Plugin",
        "PluginKind",
        "discover",
        "load_plugin",
        "load_plugins",
        "plugins_table",
        "refresh",
    ],
    "gantry.profiles": [
        "CID7050",
        "PRIVATE_PATTERN",
        "Action",
        "Profile",
        "ProfileOption",
        "available_profiles",
        "load_profile",
        "resolve_code",
    ],
    "gantry.report": [
        "ACTION_NAMES",
        "CHECKS",
        "LEVELS",
        "REPORT_FILES",
        "Chart",
        "Check",
        "ComplianceReport",
        "audit_table",
        "bar_chart",
        "compliance_report",
        "histogram",
        "pass_fail_bar",
        "schema_of_level",
        "text_bars",
        "to_parquet",
        "to_polars",
        "write_audit_report",
        "write_manifest_html",
    ],
    "gantry.review": [
        "DECISIONS_SCHEMA",
        "EXCLUDE_REASONS",
        "Zone",
        "approve",
        "create_app",
        "decisions",
        "device_zones",
        "exclude",
        "instance_zones",
        "render_png",
        "serve",
        "set_device_zones",
    ],
    "gantry.session": [
        "Session",
        "SessionInfo",
    ],
    "gantry.sr": [
        "DOCUMENTS_TABLE",
        "REDACTED",
        "SR_CONTENT_SCHEMA",
        "clean_text",
        "content_table",
        "document_exclusions",
        "document_text",
    ],
    "gantry.storage": [
        "BucketExportResult",
        "FsspecStorage",
        "LocalStorage",
        "ObjectInfo",
        "RangedFile",
        "Storage",
        "committed_files",
        "export_to_bucket",
        "is_url",
        "open_storage",
        "run_remote_ingest",
    ],
    "gantry.store": [
        "BATCH_TABLES",
        "SCHEMA_VERSION",
        "Layout",
        "Store",
    ],
    "gantry.testing": [
        "Corpus",
        "HeadPhantom",
        "InstanceSpec",
        "PatientSpec",
        "SeriesFiles",
        "SeriesSpec",
        "StudySpec",
        "decode_pixels",
        "find_canaries",
        "make_clutter",
        "make_corpus",
        "make_ct_files",
        "make_dose_sr",
        "make_encapsulated_pdf",
        "make_head_phantom",
        "make_instance",
        "make_plugin_distribution",
        "make_realistic_corpus",
        "make_series",
        "make_synthetic_index",
        "make_text_sr",
        "planned_dates",
        "write_head_series",
    ],
    "gantry.utils": [
        "CTPScriptError",
        "ConversionReport",
        "ReportItem",
        "convert_file",
        "convert_header_script",
        "convert_pixel_script",
    ],
    # the earlier name of gantry.ctp's command module (the original README runs it)
    "gantry.utils.ctp_parser": [],  # the earlier name of gantry.ctp: set below
    "gantry.vault": [
        "IDENTITY_SCHEMA",
        "VaultKey",
        "create_key_file",
        "decrypt_encrypted_attributes",
        "encrypted_attributes_sequence",
        "read_key_file",
        "read_vault",
        "recover_from_export",
    ],
}
PUBLIC_NAMES["gantry.utils.ctp_parser"] = PUBLIC_NAMES["gantry.ctp"]

# What a user calls on the facade (methods and properties, not underscored).
SESSION_MEMBERS = [
    "anonymize",
    "audit",
    "audit_report",
    "close",
    "compact",
    "compliance_report",
    "create_config",
    "deface",
    "deface_preview",
    "edit",
    "enable_reversible_anonymization",
    "export",
    "export_maps",
    "export_nifti",
    "info",
    "ingest",
    "instance",
    "instances",
    "listen",
    "load_key",
    "lock_identities",
    "path",
    "patients",
    "pending_edits",
    "preview",
    "preview_failures",
    "pull",
    "recover_patient_identity",
    "recover_uid",
    "rotate_key",
    "save",
    "save_analysis",
    "scan_pixels",
    "sql",
    "store",
    "stored_config",
    "table",
    "tables",
    "to_parquet",
    "to_polars",
]


def test_top_level_all() -> None:
    assert gantry.__all__ == ["Session", "SessionInfo", "__version__"]


@pytest.mark.parametrize("module", sorted(PUBLIC_NAMES))
def test_stage_module_public_names(module: str) -> None:
    mod = importlib.import_module(module)
    assert mod.__all__ == PUBLIC_NAMES[module], f"{module}.__all__ changed: announce it"
    for name in mod.__all__:
        assert getattr(mod, name) is not None  # every listed name really resolves


def test_every_public_module_is_frozen() -> None:
    public = {
        f"gantry.{m.name}"
        for m in pkgutil.iter_modules(gantry.__path__)
        if not m.name.startswith("_")
    }
    assert public == {m for m in PUBLIC_NAMES if m.count(".") == 1}, (
        "a public module is not listed here"
    )


def test_session_members() -> None:
    found = sorted(n for n in dir(gantry.Session) if not n.startswith("_"))
    assert found == SESSION_MEMBERS


def test_error_tree() -> None:
    from gantry import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.GantryError)
    assert issubclass(errors.ConfigError, ValueError)
    assert issubclass(errors.MissingDependencyError, ImportError)


def _minor(version: str) -> tuple[int, int]:
    major, minor = re.match(r"(\d+)\.(\d+)", version).groups()  # type: ignore[union-attr]
    return int(major), int(minor)


def test_no_deprecated_name_outstays_its_release() -> None:
    for pkg in PUBLIC_NAMES:
        importlib.import_module(pkg)
    current = _minor(gantry.__version__)
    for note in DEPRECATIONS:
        if note.module == "gantry._deprecation":  # the doctest's example
            continue
        assert current < _minor(note.removed_in), f"remove {note.name}: {note.message()}"


def test_changelog_names_the_current_version() -> None:
    changelog = Path(__file__).resolve().parents[1] / "CHANGELOG.md"
    text = changelog.read_text(encoding="utf-8")
    version = gantry.__version__.split("+")[0]
    assert re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", text, re.M), (
        f"CHANGELOG.md has no section for {version}"
    )
