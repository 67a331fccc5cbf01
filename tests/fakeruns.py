"""Synthetic run folders in the workflow's on-disk format, for the aggregate/figures/report tests.

``make_runs(root)`` writes one folder per run under ``root`` (run.json, history.csv,
metrics.json, evaluation.json) and returns the folders. The set covers every case the
later stages must handle: a baseline, initial and final runs of four optimizers, two seeds
of one of them, regularization ablations and one diverged run. Values are random but
deterministic (seeded), so a test computes its expectations from the files written.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck"]

HOSTILE = "<script>alert(1)</script>"

OPTIMIZER_CONFIGS = {
    "adam": {"name": "adam", "learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07},
    "sgd": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9, "nesterov": False},
    "rmsprop": {"name": "rmsprop", "learning_rate": 0.001, "rho": 0.9, "epsilon": 1e-07},
    "adamax": {"name": "adamax", "learning_rate": 0.002, "beta_1": 0.9, "beta_2": 0.999},
}

TUTORIAL = {"architecture": "tutorial", "filters": [32, 64, 64], "convs_per_block": 1,
            "dense": [64], "dropout": 0.0, "batch_norm": False, "l2": 0.0}
BLOCKS = {"architecture": "blocks", "filters": [32, 64, 128], "convs_per_block": 2,
          "dense": [128], "dropout": 0.3, "batch_norm": True, "l2": 0.0001}

#: (optimizer, variant, seed, role, label, model overrides, epochs, schedule, target acc, diverged epoch)
RUNS = [
    ("adam", "baseline", 0, "baseline", "Baseline: TF tutorial CNN", TUTORIAL, 10, None, 0.70, None),
    ("adam", "initial", 0, "initial", "Initial configuration", TUTORIAL, 10, None, 0.72, None),
    ("adam", "final", 0, "final", "Final: schedule + BN + dropout", BLOCKS, 12, "exp", 0.84, None),
    ("adam", "final", 1, "final", "Final: schedule + BN + dropout", BLOCKS, 12, "exp", 0.85, None),
    ("sgd", "initial", 0, "initial", "Initial configuration", TUTORIAL, 10, None, 0.62, None),
    ("sgd", "final", 0, "final", "Final: momentum + schedule", BLOCKS, 12, "exp", 0.82, None),
    ("rmsprop", "initial", 0, "initial", "Initial configuration", TUTORIAL, 10, None, 0.69, None),
    ("rmsprop", "final", 0, "final", "Final: decay + schedule", BLOCKS, 12, "exp", 0.83, None),
    ("rmsprop", "final", 1, "final", "Final: decay + schedule", BLOCKS, 12, "exp", 0.10, 3),
    ("adamax", "initial", 0, "initial", "Initial configuration", TUTORIAL, 10, None, 0.71, None),
    ("adamax", "final", 0, "final", "Final: tailored learning rate", BLOCKS, 12, "exp", 0.835, None),
    ("adam", "noreg", 0, "ablation", "Regularization: none",
     {**BLOCKS, "dropout": 0.0, "conv_dropout": 0.0, "batch_norm": False, "l2": 0.0}, 8, None, 0.74, None),
    ("adam", "dropout", 0, "ablation", "Regularization: dropout",
     {**BLOCKS, "dropout": 0.3, "batch_norm": False, "l2": 0.0}, 8, None, 0.77, None),
    ("adam", "dropout", 1, "ablation", "Regularization: dropout",
     {**BLOCKS, "dropout": 0.3, "batch_norm": False, "l2": 0.0}, 8, None, 0.775, None),
    ("adam", "l2", 0, "ablation", "Regularization: L2",
     {**BLOCKS, "dropout": 0.0, "conv_dropout": 0.0, "batch_norm": False, "l2": 0.0005}, 8, None, 0.75, None),
    ("adam", "batchnorm", 0, "ablation", "Regularization: batch norm",
     {**BLOCKS, "dropout": 0.0, "conv_dropout": 0.0, "batch_norm": True, "l2": 0.0}, 8, None, 0.78, None),
]


def _history(rng, epochs, target, lr0, schedule, diverged_epoch):
    rows = []
    elapsed = 0.0
    for e in range(1, epochs + 1):
        frac = 1.0 - math.exp(-3.0 * e / epochs)
        val_acc = min(0.99, 0.1 + (target + 0.01 - 0.1) * frac + rng.normal(0, 0.004))
        acc = min(0.999, val_acc + 0.03 * e / epochs + rng.normal(0, 0.003))
        loss = 2.3 * (1 - frac) + 0.35 + rng.normal(0, 0.01)
        val_loss = loss + 0.08 * e / epochs + rng.normal(0, 0.01)
        lr = lr0 * (0.9 ** (e - 1)) if schedule == "exp" else lr0
        seconds = 10.0 + rng.uniform(0, 2)
        if diverged_epoch is not None and e >= diverged_epoch:
            loss = val_loss = float("nan")
            acc = val_acc = 0.1
        elapsed += seconds
        rows.append({"epoch": e, "loss": loss, "accuracy": acc, "val_loss": val_loss,
                     "val_accuracy": val_acc, "learning_rate": lr, "seconds": seconds,
                     "elapsed": elapsed})
        if diverged_epoch is not None and e >= diverged_epoch:
            break
    return pd.DataFrame(rows)


def _confusion(rng, n_per_class, acc):
    k = len(CLASS_NAMES)
    cm = np.zeros((k, k), dtype=int)
    for i in range(k):
        correct = int(round(n_per_class * min(0.99, max(0.0, acc + rng.normal(0, 0.05)))))
        cm[i, i] = correct
        wrong = rng.multinomial(n_per_class - correct, [1 / (k - 1)] * (k - 1))
        cm[i, [j for j in range(k) if j != i]] = wrong
    return cm


def make_runs(root, class_names=None, hostile_run=False, only=None) -> list[Path]:
    """Write the synthetic runs under ``root``; return the run folders.

    ``class_names`` replaces the CIFAR-10 names in evaluation.json (e.g. to test escaping).
    ``hostile_run`` adds an extra-role run whose label and key adjustments contain markup.
    ``only`` (a collection of run ids) keeps just those runs, for degenerate grids.
    """
    root = Path(root)
    names = list(class_names or CLASS_NAMES)
    runs = list(RUNS)
    if hostile_run:
        runs.append(("adam", "weird", 0, "extra", HOSTILE, TUTORIAL, 4, None, 0.6, None))
    rng = np.random.default_rng(1234)
    dirs = []
    for opt, variant, seed, role, label, model, epochs, sched, target, div in runs:
        run_id = f"{opt}-{variant}-s{seed}"
        if only is not None and run_id not in only:
            continue
        d = root / run_id
        d.mkdir(parents=True, exist_ok=True)
        oc = dict(OPTIMIZER_CONFIGS[opt])
        schedule = ({"type": "exponential", "decay_rate": 0.9, "decay_step": 1, "staircase": False}
                    if sched == "exp" else {"type": "constant"})
        key_adj = {"final": f"Learning rate scheduling, dropout ({opt})"}.get(role, "")
        if role == "extra" and label == HOSTILE:
            key_adj = HOSTILE
        spec = {"run_id": run_id, "optimizer": opt, "variant": variant, "seed": seed, "role": role,
                "label": label, "key_adjustments": key_adj, "model": dict(model),
                "optimizer_config": oc, "schedule": schedule, "epochs": epochs,
                "batch_size": 64, "validation_size": 5000}
        hist = _history(rng, epochs, target, oc["learning_rate"], sched, div)
        diverged = div is not None
        test_acc = None if diverged else round(float(target + rng.normal(0, 0.003)), 4)
        best = float(hist["val_accuracy"].max())
        conv = hist.index[hist["val_accuracy"] >= best - 0.01][0]
        params = 122570 if model["architecture"] == "tutorial" else 551466
        metrics = {
            "run_id": run_id, "optimizer": opt, "variant": variant, "seed": seed, "role": role,
            "test_accuracy": test_acc, "test_loss": None if diverged else round(2.5 - 2.4 * target, 4),
            "train_seconds": float(hist["elapsed"].iloc[-1]),
            "images_per_second": round(45000 * len(hist) / float(hist["elapsed"].iloc[-1]), 1),
            "epochs": epochs, "epochs_run": len(hist),
            "convergence_epoch": None if diverged else int(hist["epoch"].iloc[conv]),
            "best_val_accuracy": best, "final_val_accuracy": float(hist["val_accuracy"].iloc[-1]),
            "params": params, "backend": "tensorflow", "device": "CPU",
            "versions": {"python": "3.11.9", "keras": "3.15.1", "tensorflow": "2.21.0",
                         "numpy": "2.1.0"},
            "diverged": diverged, "diverged_epoch": div,
        }
        cm = _confusion(rng, 100, target)
        evaluation = {
            "run_id": run_id, "test_accuracy": test_acc, "test_loss": metrics["test_loss"],
            "class_names": names,
            "per_class_accuracy": {c: float(cm[i, i] / cm[i].sum()) for i, c in enumerate(names)},
            "confusion_matrix": cm.tolist(),
            "inference_images_per_second": 2500.0 + seed, "inference_batch_size": 256,
        }
        (d / "run.json").write_text(json.dumps(spec, indent=2))
        hist.to_csv(d / "history.csv", index=False)
        (d / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (d / "evaluation.json").write_text(json.dumps(evaluation, indent=2))
        dirs.append(d)
    return dirs


def make_manifest(path, canonical=True, class_names=None) -> Path:
    """Write a data manifest.json like the prepare-data stage does; return its path."""
    names = list(class_names or CLASS_NAMES)
    if canonical:
        manifest = {"source": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                    "format": "cifar10-python", "canonical": True, "sha256": "ab" * 32,
                    "md5": "c58f30108f718f92721af3b95e74349a",
                    "checksum_verified": "md5:c58f30108f718f92721af3b95e74349a",
                    "name": "CIFAR-10 (canonical archive)"}
    else:
        manifest = {"source": "/data/cifar10-jpeg.tar.gz", "format": "image-folder",
                    "canonical": False, "sha256": "cd" * 32, "md5": "ef" * 16,
                    "checksum_verified": None,
                    "name": "image-folder archive cifar10-jpeg.tar.gz (not the canonical archive)"}
    manifest.update({"class_names": names,
                     "counts": {"train": {c: 5000 for c in names}, "test": {c: 1000 for c in names}},
                     "image_shape": [32, 32, 3],
                     "conversions": {"grayscale_to_rgb": 0 if canonical else 3, "rgba_to_rgb": 0}})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=2))
    return path


SAMPLE_CONFIG = {
    "data": {"source": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"},
    "training": {"batch_size": 64, "validation_size": 5000, "seeds": [0, 1]},
    "runs": {"adam-final": {"optimizer": "adam", "epochs": 12, "note": HOSTILE}},
}
