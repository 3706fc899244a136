"""Package-level promises: a light import, and the README's main job (the demo) end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lookalike.cli import main
from lookalike.model.factory import bundled_default_weights


def test_import_loads_neither_torch_nor_faiss() -> None:
    code = (
        "import sys, lookalike, lookalike.data, lookalike.training.metrics, lookalike.cli; "
        "print(sorted(m for m in ('torch', 'faiss', 'torchvision') if m in sys.modules))"
    )
    printed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert printed == "[]"


def test_public_api_names_resolve() -> None:
    import lookalike

    for name in lookalike.__all__:
        assert getattr(lookalike, name) is not None
    with pytest.raises(AttributeError):
        _ = lookalike.not_a_name  # type: ignore[attr-defined]


def test_demo_runs_end_to_end_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(tmp_path), "--limit", "24", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "µAP" in printed and "recall@1 by edit" in printed
    # The demo says plainly when the default model is the untrained fallback.
    assert ("UNTRAINED" in printed) == (bundled_default_weights() is None)
    predictions = (tmp_path / "predictions.csv").read_text().splitlines()
    assert predictions[0] == "query_id,reference_id,score"
    assert len(predictions) > 1
    assert (tmp_path / "index" / "CURRENT").is_file()
