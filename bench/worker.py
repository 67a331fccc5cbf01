"""One process of the bench: Keras' thread pools (and backend) are fixed when it starts.

    python bench/worker.py '{"threads": 2, "tasks": [{"mode": "peak", "size": 2048, "seconds": 4}]}'

Runs the tasks in order on ``threads`` threads (backend: ``KERAS_BACKEND``) and prints their
results as one JSON list, the last line of its output. Modes: the functions below. The images
are random uint8 (speed does not depend on pixel values).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "lib"))


def _images(n: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n, dtype=np.int64) % 10


def forward_flops(model) -> int:
    """FLOPs of one image's forward pass: 2 per multiply-add of each Conv2D and Dense layer
    (batch norm, activations, pooling and the update are small beside them; a training step
    is about three forward passes)."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            total += 2 * h * w * c_out * kh * kw * layer.input.shape[-1] // layer.groups
        elif kind == "Dense":
            total += 2 * layer.input.shape[-1] * layer.units
    return int(total)


def peak(task: dict) -> dict:
    """Best fp32 ``keras.ops.matmul`` FLOP/s of a ``size``² product, over ``seconds``."""
    import keras
    import numpy as np

    n = task["size"]
    a, b = (keras.ops.convert_to_tensor(np.random.default_rng(i).standard_normal((n, n), dtype=np.float32))
            for i in (0, 1))
    keras.ops.convert_to_numpy(keras.ops.matmul(a, b))  # warm-up
    best, reps, stop = math.inf, 0, time.perf_counter() + task["seconds"]
    while reps < 3 or time.perf_counter() < stop:
        start = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, b)[0, 0])
        best, reps = min(best, time.perf_counter() - start), reps + 1
    return {"size": n, "reps": reps, "gflops": 2 * n**3 / best / 1e9}


def throughput(task: dict) -> dict:
    """Bare ``model.fit`` images/s of ``model`` (a library spec) over ``seconds`` after a warm-up.

    With ``barrier`` (a folder) the worker says it is warm (``ready-<pid>``) and waits for
    ``go``: workers started together then measure over the same wall-clock window.
    """
    import keras

    from cnnopt.train import models, optimizers

    class Window(keras.callbacks.Callback):
        start = end = None
        batches = 0

        def on_train_batch_begin(self, batch, logs=None):
            self.start = self.start or time.time()

        def on_train_batch_end(self, batch, logs=None):
            self.batches, self.end = self.batches + 1, time.time()
            self.model.stop_training = self.end >= self.start + task["seconds"]

    keras.utils.set_random_seed(0)
    model = models.build(task["model"])
    model.compile(optimizer=optimizers.build({"name": "adam"}, {"type": "constant"}, 100),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=task.get("jit_compile", "auto"))
    batch = task["batch"]
    x, y = _images(batch * 50)
    model.fit(x[: batch * 10], y[: batch * 10], batch_size=batch, epochs=1, verbose=0)  # trace
    if task.get("barrier"):
        barrier = Path(task["barrier"])
        (barrier / f"ready-{os.getpid()}").touch()
        while not (barrier / "go").exists():
            time.sleep(0.005)
    window = Window()
    model.fit(x, y, batch_size=batch, epochs=10_000, verbose=0, callbacks=[window])
    ips = window.batches * batch / (window.end - window.start)
    fwd = forward_flops(model)
    return {"model": task["model"], "batch": batch, "images_per_second": ips,
            "forward_flops": fwd, "training_gflops": 3 * fwd * ips / 1e9,
            "window": [window.start, window.end], "backend": keras.backend.backend(),
            "jit_compile": model.jit_compile}


def train_vs_fit(task: dict) -> dict:
    """The library's ``train()`` against a bare ``model.fit``, alternating ``repeats`` times.

    Both train run ``run`` of config/config.yaml (its model, optimizer, schedule and batch) on
    the same ``n_train`` images with the same per-epoch validation on ``n_val``. Epoch time
    runs from an epoch's start to its end (validation included), as the library's history
    records it; epoch 1 (tracing) is left out; median over epochs and repeats. ``call_s`` is
    the whole call: model building and tracing, and for ``train()`` also loading the arrays,
    the per-epoch checkpoint and saving, as the ``train`` rule does.
    """
    import keras
    import numpy as np
    import pandas as pd

    from cnnopt.config import grid, schema
    from cnnopt.data import cifar10, splits
    from cnnopt.train import loop, models, optimizers

    spec = grid.run_spec(schema.load(ROOT / "config" / "config.yaml"), *task["run"])
    spec |= {"validation_size": task["n_val"], "max_train_images": 0, "max_test_images": 0,
             "epochs": task["epochs"], "model": grid.deep_merge(spec["model"], task.get("model"))}
    tmp = Path(tempfile.mkdtemp(prefix="train-vs-fit-", dir=task.get("tmp")))  # the driver removes it
    arrays = tmp / "arrays.npz"
    (x, y), (x_test, y_test) = _images(task["n_train"] + task["n_val"]), _images(100, 1)
    np.savez(arrays, x_train=x, y_train=y, x_test=x_test, y_test=y_test,
             class_names=np.array([f"c{i}" for i in range(10)]))
    sets = splits.for_run(cifar10.load(arrays), spec)
    batch, n = spec["batch_size"], len(sets["x_train"])

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.begun = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.begun)

    def bare() -> None:
        keras.utils.set_random_seed(spec["seed"])
        model = models.build(spec["model"], seed=spec["seed"])
        model.compile(optimizer=optimizers.build(spec["optimizer_config"], spec["schedule"],
                                                 math.ceil(n / batch)),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(sets["x_train"], sets["y_train"], batch_size=batch, epochs=spec["epochs"],
                  validation_data=(sets["x_val"], sets["y_val"]), validation_batch_size=max(batch, 256),
                  shuffle=True, verbose=0, callbacks=[Clock()])

    def library(i: int) -> None:
        out = tmp / f"run{i}"
        out.mkdir()
        outputs = {k: out / f"{k}.out" for k in ("history", "metrics", "spec")}
        outputs |= {"model": out / "model.keras", "best_model": out / "model_best.keras"}
        loop.train(spec, arrays, outputs, out / "checkpoint")
        seconds.extend(pd.read_csv(outputs["history"])["seconds"])

    epochs = {"fit": [], "library": []}
    calls = {"fit": [], "library": []}
    for i in range(task["repeats"]):
        for kind, run in (("fit", bare), ("library", lambda i=i: library(i))):
            seconds: list[float] = []
            start = time.perf_counter()
            run()
            calls[kind].append(time.perf_counter() - start)
            epochs[kind] += seconds[1:]
    ips = {k: n / statistics.median(v) for k, v in epochs.items()}
    return {"run": spec["run_id"], "model": spec["model"], "batch": batch, "n_train": n,
            "n_val": len(sets["x_val"]), "epochs": spec["epochs"], "repeats": task["repeats"],
            "images_per_second": ips, "ratio": ips["library"] / ips["fit"], "epoch_s": epochs,
            "call_s": {k: statistics.median(v) for k, v in calls.items()}}


def main() -> None:
    job = json.loads(sys.argv[1])
    from cnnopt.common import runtime

    runtime.configure(job["threads"])
    modes = {"peak": peak, "throughput": throughput, "train_vs_fit": train_vs_fit}
    print(json.dumps([modes[task["mode"]](task) for task in job["tasks"]], default=str))


if __name__ == "__main__":
    main()
