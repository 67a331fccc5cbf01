"""One benchmark measurement in a fresh process (thread pools are fixed when Keras starts).

    python bench/worker.py peak --threads 2 --size 2048 --seconds 3
    python bench/worker.py throughput --threads 1 --model '{"architecture": "blocks", ...}'
    python bench/worker.py p1 --threads 2 --run adam-initial-s0 --n-train 9000 --n-val 1000
    python bench/worker.py load --arrays results/data/cifar10.npz --run adam-initial-s0

Each prints one JSON line (the last line of its output) with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import load_config, synthetic_arrays  # noqa: E402

from cnnopt import runtime  # noqa: E402


def _keras(threads: int):
    runtime.configure(threads)
    import keras

    return keras


# --------------------------------------------------------------------------- fp32 matmul peak


def peak(args) -> dict:
    """Best fp32 matmul FLOP/s of the backend on ``threads`` threads (keras.ops.matmul)."""
    keras = _keras(args.threads)
    import numpy as np

    n = args.size
    rng = np.random.default_rng(0)
    a = keras.ops.convert_to_tensor(rng.standard_normal((n, n), dtype=np.float32))
    b = keras.ops.convert_to_tensor(rng.standard_normal((n, n), dtype=np.float32))
    keras.ops.convert_to_numpy(keras.ops.matmul(a, b))  # warm-up
    best, reps, stop = float("inf"), 0, time.perf_counter() + args.seconds
    while time.perf_counter() < stop or reps < 3:
        t = time.perf_counter()
        keras.ops.convert_to_numpy(keras.ops.matmul(a, b)[0, 0])
        best = min(best, time.perf_counter() - t)
        reps += 1
    return {"threads": args.threads, "size": n, "reps": reps, "seconds_best": best,
            "gflops": 2 * n**3 / best / 1e9, "backend": keras.backend.backend()}


# --------------------------------------------------------------------------- bare throughput


def throughput(args) -> dict:
    """Bare ``model.fit`` images/s over a wall-clock window [start_at, start_at + seconds].

    Several workers given the same ``start_at`` measure over the same window, so their
    images/s add up to the machine's throughput while they share it.
    """
    keras = _keras(args.threads)
    import flops
    import numpy as np

    from cnnopt import models, optimizers

    spec = json.loads(args.model)
    keras.utils.set_random_seed(0)
    model = models.build(spec)
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    model.compile(optimizer=optimizers.build({"name": "adam"}, {"type": "constant"}, 100),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=jit)
    rng = np.random.default_rng(0)
    n = args.batch * 50
    x = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, n).astype(np.int64)
    model.fit(x[: args.batch * 10], y[: args.batch * 10], batch_size=args.batch, epochs=1,
              verbose=0)  # trace and warm up

    class Window(keras.callbacks.Callback):
        started = ended = None
        batches = 0

        def on_train_batch_begin(self, batch, logs=None):
            if self.started is None and time.time() >= args.start_at:
                self.started = time.time()

        def on_train_batch_end(self, batch, logs=None):
            if self.started is None:
                return
            self.batches += 1
            now = time.time()
            if now >= self.started + args.seconds:
                self.ended = now
                self.model.stop_training = True

    if args.barrier:  # say ready, then wait for the driver's go: every worker starts together
        barrier = Path(args.barrier)
        (barrier / f"ready-{os.getpid()}").touch()
        while not (barrier / "go").exists():
            time.sleep(0.005)
        args.start_at = float((barrier / "go").read_text())
    wait = args.start_at - time.time()
    if wait > 0:
        time.sleep(wait)
    window = Window()
    model.fit(x, y, batch_size=args.batch, epochs=10_000, verbose=0, callbacks=[window])
    seconds = window.ended - window.started
    images_per_second = window.batches * args.batch / seconds
    fwd = flops.forward_flops(model)
    return {"threads": args.threads, "batch": args.batch, "model": spec, "name": model.name,
            "params": int(model.count_params()), "window_start": window.started,
            "window_end": window.ended, "late_start_s": window.started - args.start_at,
            "images_per_second": images_per_second, "forward_flops": fwd,
            "training_flops": 3 * fwd,
            "achieved_gflops": images_per_second * 3 * fwd / 1e9,
            "backend": keras.backend.backend(), "jit_compile": model.jit_compile}


# --------------------------------------------------------------------------- P1: step efficiency


def p1(args) -> dict:
    """The workflow's own ``cnnopt.train.train`` against a bare ``model.fit``, in this process.

    Both train the same model with the same optimizer, batch size and threads on the same
    arrays; the kinds alternate (bare, bare + validation, workflow, ...) ``repeats`` times.
    Per-epoch wall time is taken from one epoch's start to the next one's (the last epoch
    ends when training ends), so everything the workflow does per epoch counts: its batch
    sequence, validation, callbacks, checkpoint. The first epoch (tracing) is left out.
    """
    keras = _keras(args.threads)
    from cnnopt import config as cnnconfig
    from cnnopt import data, models, optimizers, splits
    from cnnopt import train as train_mod

    files = ["config/config.yaml", *args.configfile]
    cfg = load_config(*files)
    optimizer, variant, seed = args.run.rsplit("-", 2)
    spec = cnnconfig.run_spec(cfg, optimizer, variant, int(seed[1:]))
    spec = {**spec, "validation_size": args.n_val, "max_train_images": 0, "max_test_images": 0,
            "epochs": args.epochs}
    if args.model:
        spec["model"] = cnnconfig.deep_merge(spec["model"], json.loads(args.model))

    class EpochClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.marks: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.marks.append(time.perf_counter())

        def on_train_end(self, logs=None):
            self.marks.append(time.perf_counter())

        def steady(self, n_images):
            seconds = [b - a for a, b in zip(self.marks, self.marks[1:], strict=False)][1:]
            return n_images / statistics.median(seconds), seconds

    clocks: list[EpochClock] = []

    Recorder = train_mod.EpochRecorder

    class TimedRecorder(Recorder, EpochClock):
        """The workflow's EpochRecorder, also noting each epoch's wall-clock start."""

        def __init__(self, *a, **k):
            Recorder.__init__(self, *a, **k)
            self.marks = []
            clocks.append(self)

        def on_epoch_begin(self, epoch, logs=None):
            Recorder.on_epoch_begin(self, epoch, logs)
            EpochClock.on_epoch_begin(self, epoch, logs)

    train_mod.EpochRecorder = TimedRecorder  # measurement hook; the training code is untouched

    tmp = Path(tempfile.mkdtemp(prefix="cnnopt-bench-p1-"))
    arrays = synthetic_arrays(tmp / "arrays.npz", args.n_train + args.n_val, 256)
    sets = splits.select(data.load(arrays), spec)
    steps = -(-len(sets["x_train"]) // spec["batch_size"])

    def bare(validation: bool):
        keras.utils.set_random_seed(spec["seed"])
        model = models.build(spec["model"], num_classes=10)
        model.compile(optimizer=optimizers.build(spec["optimizer_config"], spec["schedule"], steps),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        clock = EpochClock()
        extra = ({"validation_data": (sets["x_val"], sets["y_val"]),
                  "validation_batch_size": max(spec["batch_size"], 256)} if validation else {})
        model.fit(sets["x_train"], sets["y_train"], batch_size=spec["batch_size"],
                  epochs=spec["epochs"], verbose=0, shuffle=True, callbacks=[clock], **extra)
        return clock.steady(len(sets["x_train"]))

    def workflow(i: int):
        out = tmp / f"run{i}"
        out.mkdir()
        outputs = {name: out / f"{name}.out" for name in ("history", "metrics", "spec")}
        outputs["model"] = out / "model.keras"
        train_mod.train(spec, arrays, outputs, checkpoint=out / "checkpoint")
        return clocks[-1].steady(len(sets["x_train"]))

    results = {"bare": [], "bare_validation": [], "workflow": []}
    for i in range(args.repeats):
        results["bare"].append(bare(False))
        results["bare_validation"].append(bare(True))
        results["workflow"].append(workflow(i))
    rate = {k: statistics.median(r for r, _ in v) for k, v in results.items()}
    return {
        "threads": args.threads, "run": args.run, "model": spec["model"],
        "batch_size": spec["batch_size"], "n_train": len(sets["x_train"]),
        "n_val": len(sets["x_val"]), "epochs": spec["epochs"], "repeats": args.repeats,
        "checkpoint_per_epoch": True,
        "images_per_second": rate,
        "epoch_seconds": {k: [s for _, s in v] for k, v in results.items()},
        "ratio": rate["workflow"] / rate["bare"],
        "ratio_vs_bare_with_validation": rate["workflow"] / rate["bare_validation"],
        "validation_share": 1 - rate["bare_validation"] / rate["bare"],
    }


# --------------------------------------------------------------------------- cached-array load


def load(args) -> dict:
    """Seconds to load the cached arrays and select a run's sets, as a training job does."""
    _keras(1)
    from cnnopt import config as cnnconfig
    from cnnopt import data, splits

    cfg = load_config("config/config.yaml")
    optimizer, variant, seed = args.run.rsplit("-", 2)
    spec = cnnconfig.run_spec(cfg, optimizer, variant, int(seed[1:]))
    if args.validation_size is not None:
        spec["validation_size"] = args.validation_size
    times = []
    for _ in range(3):
        t = time.perf_counter()
        sets = splits.select(data.load(args.arrays), spec)
        times.append(time.perf_counter() - t)
    return {"arrays": str(args.arrays), "bytes": Path(args.arrays).stat().st_size,
            "n_train": len(sets["x_train"]), "seconds": times, "seconds_median": statistics.median(times)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("peak")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--seconds", type=float, default=3.0)
    p = sub.add_parser("throughput")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", required=True)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--start-at", type=float, default=0.0)
    p.add_argument("--barrier", default="", help="folder for a ready/go start barrier")
    p.add_argument("--jit-compile", choices=["auto", "true", "false"], default="auto",
                   help="model.compile(jit_compile=...): XLA on TensorFlow")
    p = sub.add_parser("p1")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--run", default="adam-initial-s0")
    p.add_argument("--configfile", action="append", default=[])
    p.add_argument("--model", default="", help="JSON merged over the run's model spec")
    p.add_argument("--n-train", type=int, default=9000)
    p.add_argument("--n-val", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=2)
    p = sub.add_parser("load")
    p.add_argument("--arrays", type=Path, required=True)
    p.add_argument("--run", default="adam-initial-s0")
    p.add_argument("--validation-size", type=int, default=None)
    args = parser.parse_args(argv)
    result = {"peak": peak, "throughput": throughput, "p1": p1, "load": load}[args.mode](args)
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
