"""Shared pytest setup: the test helpers on sys.path and the offline CIFAR-10 mirror. The
cnnopt library is the installed package (requirements.txt installs this clone's, editable)."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

# Under pytest-xdist (-n N) the N workers share the cores: one thread per framework pool in
# each (set before TensorFlow is imported), as ``runtime.configure(1)`` gives a one-thread job.
# Without it every worker's TensorFlow spins a pool the size of the machine.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
                 "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")


def pytest_collection_modifyitems(items):
    """A test that takes the mirror fixture is marked ``mirror`` (markers: pyproject.toml).
    Then the order: the SLURM tests (the longest file, much of it waiting on the cluster),
    the other ``slow`` tests, the other ``dag`` tests, then the unit tests (stable within
    each), so that on two workers (``-n 2``; ``--dist loadfile --no-loadscope-reorder`` in
    pyproject.toml) the long files start first and the workers finish together."""
    for item in items:
        if "mirror" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.mirror)

    def rank(item) -> int:
        for i, marker in enumerate(("slurm", "slow", "dag")):
            if item.get_closest_marker(marker):
                return i
        return 3

    items.sort(key=rank)


@pytest.fixture(scope="session")
def mirror() -> Path:
    """The offline CIFAR-10 JPEG mirror (env CNNOPT_MIRROR overrides); skip when absent."""
    path = Path(os.environ.get("CNNOPT_MIRROR")
                or ROOT.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz")
    if not path.is_file():
        pytest.skip(f"CIFAR-10 mirror not found at {path}")
    return path


def pytest_unconfigure(config):
    """An xdist worker that has reported every result skips the interpreter's teardown of
    TensorFlow and the rest (2-3 s a worker, which the controller waits for): its last exit
    handler flushes the standard streams and leaves at once."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import atexit

        def leave():
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)

        atexit.register(leave)
