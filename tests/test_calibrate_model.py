"""`lookalike calibrate`: a checkpoint gains calibrations and thresholds for both modes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lookalike.cli import main
from lookalike.data.synthetic import synthetic_image
from lookalike.detect import Detector, Thresholds
from lookalike.indexing import new_index_for
from lookalike.model import create_embedder, get_spec, load_checkpoint, save_checkpoint
from lookalike.model.network import DescriptorNet
from lookalike.rerank import LocalVerifier


@pytest.mark.slow
def test_calibrate_writes_a_calibrated_half_precision_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in range(60):
        synthetic_image(seed).save(photos / f"p{seed:03d}.png")
    spec = get_spec("resnet18")
    torch.manual_seed(0)
    trained = save_checkpoint(
        tmp_path / "trained.pt",
        DescriptorNet(spec),
        spec,
        {"trained": True, "history": [{"step": 1}]},
    )
    out = tmp_path / "calibrated.pt"
    code = main(
        [
            "calibrate",
            str(trained),
            str(photos),
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
            "--shortlist",
            "3",
            "--queries-per-kind",
            "3",
            "--sibling-penalty",
            "0.5",
            "--descriptor-sibling-penalty",
            "0.25",
            "--quiet",
        ]
    )
    assert code == 0
    assert '"thresholds"' in capsys.readouterr().out

    checkpoint = load_checkpoint(out)
    metadata = checkpoint.metadata
    for suffix in ("", "_verified"):
        thresholds = metadata[f"thresholds{suffix}"]
        assert thresholds["review"] <= thresholds["copy"]
        assert len(metadata[f"calibration{suffix}"]["scores"]) > 1
    assert metadata["rerank"]["shortlist"] == 3 and "history" not in metadata
    assert metadata["rerank"]["sibling_penalty"] == 0.5
    assert metadata["sibling_penalty"] == 0.25
    assert out.stat().st_size < trained.stat().st_size * 0.6  # fp16 weights

    embedder = create_embedder(out)
    plain = Detector(embedder, new_index_for(embedder))
    verified = Detector(embedder, new_index_for(embedder), verifier=LocalVerifier())
    assert (plain.sibling_penalty, verified.sibling_penalty) == (0.25, 1.0)  # defaults here
    assert plain.thresholds == Thresholds(**metadata["thresholds"])
    assert verified.thresholds == Thresholds(**metadata["thresholds_verified"])
    assert plain.calibration is not None and verified.calibration is not None
