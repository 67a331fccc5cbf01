"""The framework around a run: threads, backend, device and library versions.

``configure`` must run before Keras is first imported, since thread pools and the backend
are fixed when the framework starts.
"""

from __future__ import annotations

import os
import platform
import sys


def configure(threads: int) -> None:
    """Limit every thread pool the frameworks use to ``threads``; quiet TensorFlow's C++ log."""
    n = str(max(1, int(threads)))
    for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "MKL_NUM_THREADS",
                "OPENBLAS_NUM_THREADS"):
        os.environ[var] = n
    os.environ["TF_NUM_INTEROP_THREADS"] = "1" if int(n) == 1 else "2"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if os.environ["KERAS_BACKEND"] == "jax":
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + f" --xla_cpu_multi_thread_eigen={'true' if int(n) > 1 else 'false'}"
        ).strip()
    if os.environ["KERAS_BACKEND"] == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(int(n))
            tf.config.threading.set_inter_op_parallelism_threads(int(os.environ["TF_NUM_INTEROP_THREADS"]))
        except RuntimeError:  # already initialised in this process: the env vars still hold
            pass
    elif os.environ["KERAS_BACKEND"] == "torch":
        import torch

        torch.set_num_threads(int(n))


def deterministic() -> None:
    """Ask the backend for deterministic kernels (same seed, same numbers; may be slower).

    TensorFlow: ``enable_op_determinism``; PyTorch: ``use_deterministic_algorithms``; JAX
    (XLA) is deterministic on the CPU already (on a GPU, set
    ``XLA_FLAGS=--xla_gpu_deterministic_ops=true`` before the run).
    """
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True)


def device() -> str:
    """A short description of the device the backend computes on."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
            return f"gpu:{name}"
    elif backend == "jax":
        import jax

        dev = jax.devices()[0]
        if dev.platform != "cpu":
            return f"gpu:{getattr(dev, 'device_kind', dev.platform)}"
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return f"gpu:{torch.cuda.get_device_name(0)}"
    return f"cpu:{platform.processor() or platform.machine()}"


def versions() -> dict:
    """Versions of the libraries a result depends on."""
    import keras
    import numpy

    found = {"python": sys.version.split()[0], "keras": keras.__version__,
             "numpy": numpy.__version__, "backend": keras.backend.backend()}
    for module in ("tensorflow", "jax", "torch"):
        if module in sys.modules:
            found[module] = getattr(sys.modules[module], "__version__", "unknown")
    return found
