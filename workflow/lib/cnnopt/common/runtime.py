"""The framework around a run: threads, backend, device and library versions.

``configure`` must run before Keras is first imported, since thread pools, the backend and
the visible devices are fixed when the framework starts.
"""

from __future__ import annotations

import logging
import os
import platform
import sys

from cnnopt.common import logs

log = logging.getLogger("cnnopt.common.runtime")

# A C++ log line of TensorFlow or XLA (absl/TSL), its level one of ``levels``: the absl form
# "E0000 00:00:1712345678.123456    1234 cuda_platform.cc:52] ..." (also "I1202 04:56:29...")
# and the older TensorFlow form "2024-01-01 12:00:00.123456: W tensorflow/...cc:38] ...".
_CPP = (r"^(?:[{levels}]\d{{4}} \d\d:\d\d:\d+\.\d+\s+\d+ "
        r"|\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [{levels}] )\S+:\d+\] ")

#: Lines known to be harmless on every machine.
HARMLESS = [
    # absl's note on where it writes before it is set up (TensorFlow prints it at import)
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    # pip's TensorFlow registers its CUDA plugins twice (tensorflow/tensorflow#62075)
    _CPP.format(levels="EW") + r"Unable to register cu(?:DNN|FFT|BLAS) factory: Attempting to "
    r"register factory for plugin \S+ when one has already been registered",
]
#: Lines known to be harmless when the job was given no GPU: TensorFlow looks for one anyway.
HARMLESS_WITHOUT_GPU = [
    _CPP.format(levels="IWE") + r"failed call to cuInit\b",
    _CPP.format(levels="IWE") + r"Could not find cuda drivers on your machine, GPU will not be used",
    _CPP.format(levels="IWE") + r"Cannot dlopen some GPU libraries\.",
]


def given_gpus() -> list[str] | None:
    """The GPUs this job was given (``CUDA_VISIBLE_DEVICES``, as set by
    :func:`cnnopt.common.gpus.claim`): ``[]`` for none, ``None`` when it is not set."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return None
    if visible.strip().lower() in ("", "none", "-1", "nodevfiles"):
        return []
    return [part.strip() for part in visible.split(",") if part.strip()]


def harmless_lines(without_gpu: bool) -> list[str]:
    """Patterns of the framework lines on stderr that a healthy run's log leaves out.

    Besides the lists above: TensorFlow's C++ lines below ``TF_CPP_MIN_LOG_LEVEL`` (1: INFO,
    2: also WARNING, 3: also ERROR), which TensorFlow prints anyway before its logging is set
    up (the oneDNN notice, "Could not find cuda drivers"). A fatal (``F``) line is always kept.
    """
    try:
        level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        level = 0
    patterns = list(HARMLESS)
    if level > 0:
        patterns.append(_CPP.format(levels="IWE"[:min(level, 3)]))
    if without_gpu:
        patterns += HARMLESS_WITHOUT_GPU
    return patterns


def quiet_stderr() -> bool:
    """Copy the frameworks' stderr into the rule's log (see :func:`cnnopt.common.logs.setup`),
    less the harmless lines; the no-GPU ones only when the job was given no GPU."""
    return logs.capture_stderr(harmless_lines(without_gpu=given_gpus() == []))


def configure(threads: int) -> None:
    """Limit every thread pool the frameworks use to ``threads``; hide the GPUs from the
    frameworks when the job was given none; keep the frameworks' known-harmless lines out of
    the log (:func:`quiet_stderr`); log the device in one line (:func:`describe_device`)."""
    n = str(max(1, int(threads)))
    for var in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "MKL_NUM_THREADS",
                "OPENBLAS_NUM_THREADS"):
        os.environ[var] = n
    os.environ["TF_NUM_INTEROP_THREADS"] = "1" if int(n) == 1 else "2"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if given_gpus() == []:  # CUDA_VISIBLE_DEVICES="" hides them from TensorFlow and PyTorch
        os.environ.setdefault("JAX_PLATFORMS", "cpu")  # JAX would look for one and warn
    quiet_stderr()
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
    line = describe_device(int(n))
    given = given_gpus()
    if given and line.startswith("device: CPU"):
        log.warning("%s, although this job was given GPU %s", line, ",".join(given))
    else:
        log.info("%s", line)


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


def _gpu_names(backend: str) -> list[str]:
    """The names of the GPUs ``backend`` computes on (empty: the CPU)."""
    if backend == "tensorflow":
        import tensorflow as tf

        return [tf.config.experimental.get_device_details(gpu).get("device_name", "GPU")
                for gpu in tf.config.list_physical_devices("GPU")]
    if backend == "jax":
        import jax

        return [getattr(dev, "device_kind", dev.platform) for dev in jax.devices()
                if dev.platform != "cpu"]
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return []


def device() -> str:
    """A short description of the device the backend computes on."""
    import keras

    names = _gpu_names(keras.backend.backend())
    if names:
        return f"gpu:{names[0]}"
    return f"cpu:{platform.processor() or platform.machine()}"


def describe_device(threads: int) -> str:
    """One line for the log: ``device: CPU (2 threads), backend tensorflow`` or
    ``device: GPU 0 (NVIDIA H200), backend tensorflow`` (the ids of ``CUDA_VISIBLE_DEVICES``)."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    names = _gpu_names(backend)
    if not names:
        return f"device: CPU ({threads} thread{'' if threads == 1 else 's'}), backend {backend}"
    ids = given_gpus() or [str(i) for i in range(len(names))]
    return f"device: GPU {','.join(ids)} ({', '.join(dict.fromkeys(names))}), backend {backend}"


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
