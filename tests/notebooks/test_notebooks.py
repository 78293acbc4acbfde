"""Every notebook in notebooks/ runs top to bottom without a warning, keeps its outputs in
the folder it names, uses only the public API, and is stored without outputs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((Path(__file__).parents[2] / "notebooks").glob("*.ipynb"))


def test_the_notebooks_exist() -> None:
    assert [p.stem for p in NOTEBOOKS] == [
        "01_getting_started",
        "02_redaction",
        "03_cohort_analytics",
        "04_compliance",
        "05_structured_reports",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_outputs_are_stripped(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        book,
        timeout=120,
        kernel_name="python3",
        # ipykernel's "python3" spec starts `python`, which jupyter_client resolves to
        # the interpreter running the tests (the venv's)
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    errors = [
        out
        for cell in book.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "error"
    ]
    assert not errors
    streams = [
        out
        for cell in book.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.output_type == "stream"
    ]
    assert not [o.text for o in streams if o.name == "stderr"], path.name  # no warning at all
    assert not [o.text for o in streams if "Warning" in o.text], path.name
    kept = tmp_path / "output" / path.stem
    assert kept.is_dir() and any(kept.iterdir()), f"{path.name} keeps nothing in {kept}"
    images = [
        out
        for cell in book.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "image/png" in out.get("data", {})
    ]
    if path.stem in ("01_getting_started", "02_redaction"):
        assert images, f"{path.name} shows its images with matplotlib"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_only_the_public_api(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in book.cells if c.cell_type == "code")
    private = re.findall(r"(?:from|import)\s+(gantry[\w.]*\._\w+)", code)
    assert not private, f"{path.name} imports private modules: {private}"
    assert "tempfile" not in code and "rmtree(work)" not in code  # outputs stay to be opened
