import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    # Tests read MNIST from the shared copy next to the checkout unless told otherwise; they never download.
    default = ROOT.parent / "shared" / "data" / "mnist"
    if "DIFFCOURSE_DATA_DIR" not in os.environ and default.exists():
        os.environ["DIFFCOURSE_DATA_DIR"] = str(default)
    os.environ.setdefault("DIFFCOURSE_DEVICE", "cpu")
    # the unit tests use small tensors: one thread is faster than two (and far faster on a busy machine)
    torch.set_num_threads(1)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(1234)
