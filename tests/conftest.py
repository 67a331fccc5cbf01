"""Shared pytest setup: the cnnopt library on sys.path and the offline CIFAR-10 mirror."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "lib"))
sys.path.insert(0, str(ROOT / "tests"))


def pytest_configure(config):
    config.addinivalue_line("markers", "slurm: runs a single-node SLURM cluster (slurm-wlm, munge)")


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The offline CIFAR-10 JPEG mirror (env CNNOPT_MIRROR overrides); skip when absent."""
    path = Path(os.environ.get("CNNOPT_MIRROR")
                or ROOT.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz")
    if not path.is_file():
        pytest.skip(f"CIFAR-10 mirror not found at {path}")
    return path
