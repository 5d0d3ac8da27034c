"""The benchmarks' peer (tools/peer_plans.py) prunes an Ultralytics detector in the form Torch-Pruning's users
give it: C2f-style blocks with their first conv split in two. That form must compute what the model computes, or
the same-run comparison would time another network."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from edgeprune.models import create_model
from edgeprune.prune.oracle import liven

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from peer_plans import SplitCSP, split_csp  # noqa: E402


@pytest.mark.parametrize("name", ["ultralytics:yolov8n.yaml", "ultralytics:yolo11n.yaml"])
def test_the_split_form_of_a_yolo_computes_the_same(name: str) -> None:
    torch.manual_seed(0)
    model = liven(create_model(name), 128).eval()  # a fresh YOLO's signal fades: outputs near its biases
    split = split_csp(model)
    blocks = [m for m in split.model.model if isinstance(m, SplitCSP)]
    assert len(blocks) == 8  # every C2f / C3k2 of the backbone and neck
    assert all(p.requires_grad for p in split.parameters())  # Torch-Pruning traces through autograd
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(split(x), model(x), rtol=1e-4, atol=1e-4)
        # block by block too, each on inputs of its own
        originals = [m for m in model.model.model if type(m).__name__ in ("C2f", "C3k2")]
        for block, rewritten in zip(originals, blocks, strict=True):
            y = torch.randn(2, block.cv1.conv.in_channels, 16, 16)
            torch.testing.assert_close(rewritten(y), block(y), rtol=1e-4, atol=1e-4)
    assert sum(p.numel() for p in split.parameters()) == sum(p.numel() for p in model.parameters())
