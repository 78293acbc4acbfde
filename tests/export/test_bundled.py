"""The default export on every readable sample pydicom bundles (with ``pydicom-data``).

Every instance not excluded for burned-in risk is exported, none fails verification,
and every exclusion names its attribute.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from pydicom.data import get_testdata_files

from gantry import Session


@pytest.mark.slow
def test_default_export_of_every_bundled_sample(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files = sorted(set(get_testdata_files()))
    with Session(tmp_path / "s.db") as s:
        config = s.create_config(tmp_path / "gantry.yaml")
        indexed = s.ingest(files, workers=2, progress=False).indexed
        assert indexed > 200  # pydicom's test files and pydicom-data's
        s.anonymize(config)
        r = s.export(tmp_path / "out", config=config, workers=2, progress=False)
        assert r.failed.height == 0, r.failed.to_dicts()[:5]
        assert r.exported + r.excluded.height == indexed
        for reason in r.excluded["reason"]:
            assert reason.startswith("PixelData: burned-in text risk"), reason
        pairs = s.sql(
            "SELECT i.file_path, e.output_path FROM exports e JOIN instances i USING (file_id) "
            "WHERE e.status = 'ok'"
        ).rows()
    assert len(pairs) == r.exported
