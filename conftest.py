"""Repository-level pytest set-up. The mechcheck plugin itself is loaded through its pytest11
entry point (pyproject.toml), so it works in any project that installs mechcheck."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _fixed_seed():
    """Every test starts from the same global RNG state: CPU runs are reproducible."""
    torch.manual_seed(0)
    yield
