from __future__ import annotations

from pathlib import Path

import pytest
import torch

SAMPLES = Path(__file__).resolve().parents[2] / "datasets" / "samples"


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def pipeline():
    from warpstyle.pipeline import Pipeline

    return Pipeline.from_pretrained()


@pytest.fixture()
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)
