"""The retraining notebook runs top to bottom on a tiny image set made in code."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "retrain.ipynb"

TINY = {
    "IMAGES": None,
    "EPOCHS": 1,
    "MAX_STEPS": 3,
    "BATCH_SIZE": 4,
    "INPUT_SIZE": 64,
    "EVAL_EVERY": 0,
    "QUERIES_PER_KIND": 1,
    "SYNTHETIC_IMAGES": 60,
}


def with_parameters(notebook: nbformat.NotebookNode, values: dict[str, object], work: Path) -> None:
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    assignments = {**values, "WORK": str(work)}
    cell.source += "\n" + "\n".join(f"{name} = {value!r}" for name, value in assignments.items())


@pytest.mark.slow
def test_retrain_notebook_executes(tmp_path: Path) -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    with_parameters(notebook, TINY, tmp_path / "work")
    NotebookClient(
        notebook,
        timeout=170,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    outputs = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    )
    assert "before: µAP" in outputs and "recall@1" in outputs
    assert (tmp_path / "work" / "run" / "last.pt").is_file()
    assert (tmp_path / "work" / "index" / "CURRENT").is_file()
