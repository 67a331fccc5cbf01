"""Synthetic run folders in the workflow's on-disk format, for the aggregate/figures/report tests.

``make_runs(root)`` writes one folder per run under ``root`` (run.json, history.csv,
metrics.json, evaluation.json) and returns the folders. The runs are shaped like the default
grid of config/config.yaml: the baseline (one seed), per optimizer an initial, a final and a
``final_no_schedule`` twin, SGD's ``final_no_momentum`` twin and Adam's ``final_no_dropout``
and ``final_no_batchnorm`` twins (role ``ablation``), two seeds each. One run
(rmsprop-final-s1) diverges at epoch 3 and predicts class 0 for every image (10 %).

evaluation.json holds per-image ``labels`` and ``predictions`` on one shared test set of
``N_TEST`` images (``N_TEST // 10`` per class); the confusion matrix, per-class and test
accuracies are computed from them. A run gets right the images that are easiest for it: a
shared per-image difficulty plus per-run noise, so runs are correlated as real ones are and
the paired (McNemar) tests of the claims table see realistic discordant counts.

Each run's last-epoch validation accuracy (``final_val_accuracy``) is set apart from its test
accuracy: Adamax's final runs have the highest validation accuracy, Adam's seed 1 the highest
test accuracy of the final runs, so a test can tell which of the two chose a run. The targets
give the claims table a mix of verdicts. Values are random but deterministic (seeded per run
id, so ``only`` does not change them); a test computes its expectations from the files written.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from cnnopt.data import cifar10 as data

CLASS_NAMES = list(data.CLASS_NAMES)

N_CLASSES = len(CLASS_NAMES)
HOSTILE = "<script>alert(1)</script>"

#: Test images, shared by every run: the labels (200 per class, shuffled) and how hard each is.
N_TEST = 2000
LABELS = np.random.default_rng(7).permutation(np.repeat(np.arange(10), N_TEST // 10))
DIFFICULTY = np.random.default_rng(8).random(N_TEST)
#: Per-run noise added to the shared difficulty (smaller: runs more alike).
NOISE = 0.12

DEFAULT_OPTIMIZERS = {
    "adam": {"name": "adam", "learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07},
    "sgd": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.0, "nesterov": False},
    "rmsprop": {"name": "rmsprop", "learning_rate": 0.001, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-07},
    "adamax": {"name": "adamax", "learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07},
}
#: The final recipe's changes to the optimizer's hyperparameters (config/config.yaml).
FINAL_OPTIMIZERS = {
    "adam": {},
    "sgd": {"momentum": 0.9, "learning_rate": 0.02},
    "rmsprop": {"rho": 0.95},
    "adamax": {"learning_rate": 0.002},
}
KEY_ADJUSTMENTS = {
    "adam": "Learning rate scheduling, batch normalization, dropout",
    "sgd": "Momentum, learning rate scheduling, dropout",
    "rmsprop": "Decay adjustments, learning rate scheduling, dropout",
    "adamax": "Tailored learning rate settings, dropout",
}

TUTORIAL = {"architecture": "tutorial"}
BLOCKS = {"architecture": "blocks", "filters": [32, 64, 128], "convs_per_block": 1,
          "dense": [128], "dropout": 0.0, "conv_dropout": 0.0, "batch_norm": False, "l2": 0.0}
FINAL_MODEL = {**BLOCKS, "dropout": 0.4, "conv_dropout": 0.2}
EXP = {"type": "exponential", "decay_rate": 0.8, "decay_step": 1, "staircase": True}
CONSTANT = {"type": "constant"}

LABELS_OF = {
    "baseline": "TensorFlow tutorial CNN and protocol (Adam, batch 32, all 50,000 training images, "
                "test set as validation), 10 epochs",
    "initial": "First complete training cycle, default hyperparameters, constant learning rate",
    "final": "Table 1's key adjustments (reduced scale)",
    "final_no_schedule": "Final recipe without its learning-rate schedule (constant rate)",
    "final_no_momentum": "Final recipe without momentum",
    "final_no_dropout": "Final recipe without dropout",
    "final_no_batchnorm": "Final recipe without batch normalization",
}

#: (optimizer, variant, role, epochs, [(test accuracy, last-epoch validation accuracy) per seed])
#: A test accuracy of None marks the diverged run (it scores 10 %: every image class 0).
ARMS = [
    ("adam", "baseline", "baseline", 10, [(0.705, 0.700)]),
    ("adam", "initial", "initial", 10, [(0.720, 0.715), (0.723, 0.718)]),
    ("sgd", "initial", "initial", 10, [(0.550, 0.545), (0.553, 0.548)]),
    ("rmsprop", "initial", "initial", 10, [(0.700, 0.695), (0.702, 0.698)]),
    ("adamax", "initial", "initial", 10, [(0.709, 0.705), (0.707, 0.702)]),
    ("adam", "final", "final", 12, [(0.840, 0.800), (0.853, 0.805)]),
    ("sgd", "final", "final", 12, [(0.760, 0.755), (0.765, 0.760)]),
    ("rmsprop", "final", "final", 12, [(0.830, 0.820), None]),
    ("adamax", "final", "final", 12, [(0.835, 0.832), (0.831, 0.836)]),
    ("adam", "final_no_schedule", "ablation", 12, [(0.825, 0.790), (0.838, 0.796)]),
    ("sgd", "final_no_schedule", "ablation", 12, [(0.755, 0.750), (0.766, 0.758)]),
    ("rmsprop", "final_no_schedule", "ablation", 12, [(0.800, 0.795), (0.805, 0.800)]),
    ("adamax", "final_no_schedule", "ablation", 12, [(0.805, 0.800), (0.802, 0.804)]),
    ("sgd", "final_no_momentum", "ablation", 12, [(0.690, 0.685), (0.694, 0.690)]),
    ("adam", "final_no_dropout", "ablation", 12, [(0.860, 0.810), (0.872, 0.815)]),
    ("adam", "final_no_batchnorm", "ablation", 12, [(0.780, 0.770), (0.792, 0.775)]),
]
DIVERGED = {"rmsprop-final-s1": 3}


def run_ids() -> list[str]:
    """Every run id ``make_runs`` writes by default."""
    return [f"{o}-{v}-s{s}" for o, v, _, _, seeds in ARMS for s in range(len(seeds))]


def _spec(opt, variant, role, seed, epochs, label=None):
    final_like = role in ("final", "ablation")
    oc = dict(DEFAULT_OPTIMIZERS[opt])
    model = dict(TUTORIAL if role in ("baseline", "extra") else BLOCKS)
    schedule = dict(CONSTANT)
    key_adj = ""
    if final_like:
        oc |= FINAL_OPTIMIZERS[opt]
        model = dict(FINAL_MODEL, batch_norm=opt == "adam")
        schedule = dict(EXP)
        key_adj = KEY_ADJUSTMENTS[opt]
    if variant == "final_no_schedule":
        schedule = dict(CONSTANT)
    elif variant == "final_no_momentum":
        oc["momentum"] = 0.0
    elif variant == "final_no_dropout":
        model |= {"dropout": 0.0, "conv_dropout": 0.0}
    elif variant == "final_no_batchnorm":
        model["batch_norm"] = False
    baseline = role == "baseline"
    return {"run_id": f"{opt}-{variant}-s{seed}", "optimizer": opt, "variant": variant,
            "seed": seed, "role": role, "label": label or LABELS_OF.get(variant, variant),
            "key_adjustments": key_adj, "model": model, "optimizer_config": oc,
            "schedule": schedule, "epochs": epochs, "batch_size": 32 if baseline else 64,
            "validation_size": 0 if baseline else 5000}


def _history(rng, epochs, val_final, lr0, schedule, diverged_epoch, speed):
    """Per-epoch history whose last validation accuracy is ``val_final`` (± 0.002)."""
    rows = []
    elapsed = 0.0
    top = 1.0 - math.exp(-speed)
    for e in range(1, epochs + 1):
        frac = (1.0 - math.exp(-speed * e / epochs)) / top
        noise = rng.normal(0, 0.004) if e < epochs else rng.normal(0, 0.001)
        val_acc = 0.1 + (val_final - 0.1) * frac + noise
        acc = min(0.999, val_acc + 0.03 * e / epochs + rng.normal(0, 0.003))
        loss = 2.3 * (1 - frac) + 0.35 + rng.normal(0, 0.01)
        val_loss = loss + 0.08 * e / epochs + rng.normal(0, 0.01)
        if schedule.get("type") == "exponential":
            lr = lr0 * schedule["decay_rate"] ** ((e - 1) // schedule["decay_step"])
        else:
            lr = lr0
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


def predictions_for(rng, accuracy: float | None) -> np.ndarray:
    """Predicted classes right on round(accuracy * N_TEST) images: the easiest for this run.

    ``None`` (a diverged run): class 0 for every image, as argmax of NaN probabilities gives.
    """
    if accuracy is None:
        return np.zeros(N_TEST, dtype=int)
    score = DIFFICULTY + rng.normal(0, NOISE, N_TEST)
    correct = np.zeros(N_TEST, dtype=bool)
    correct[np.argsort(score, kind="stable")[:int(round(accuracy * N_TEST))]] = True
    wrong = (LABELS + rng.integers(1, 10, N_TEST)) % 10
    return np.where(correct, LABELS, wrong)


def confusion(labels, predictions, k=N_CLASSES) -> np.ndarray:
    return np.bincount(labels * k + predictions, minlength=k * k).reshape(k, k)


def write_run(root, spec: dict, test_target: float | None, val_final: float,
              class_names=None, diverged_epoch=None) -> Path:
    """Write one run folder for ``spec``; return it."""
    names = list(class_names or CLASS_NAMES)
    run_id = spec["run_id"]
    rng = np.random.default_rng(zlib.crc32(run_id.encode()))
    d = Path(root) / run_id
    d.mkdir(parents=True, exist_ok=True)
    speed = 7.0 if spec["optimizer"] == "adam" else 3.0  # Adam levels off, the rest still rise
    hist = _history(rng, spec["epochs"], val_final, spec["optimizer_config"]["learning_rate"],
                    spec["schedule"], diverged_epoch, speed)
    diverged = diverged_epoch is not None
    pred = predictions_for(rng, None if diverged else test_target)
    cm = confusion(LABELS, pred)
    test_acc = float(np.mean(pred == LABELS))
    test_loss = None if diverged else round(2.5 - 2.4 * test_acc, 4)
    best = float(hist["val_accuracy"].max())
    conv = hist.index[hist["val_accuracy"] >= best - 0.01][0]
    params = 122570 if spec["model"]["architecture"] == "tutorial" else 551466
    n_train = 50000 - spec["validation_size"]
    metrics = {
        "run_id": run_id, "optimizer": spec["optimizer"], "variant": spec["variant"],
        "seed": spec["seed"], "role": spec["role"],
        "test_accuracy": test_acc, "test_loss": test_loss,
        "train_seconds": float(hist["elapsed"].iloc[-1]),
        "images_per_second": round(n_train * len(hist) / float(hist["elapsed"].iloc[-1]), 1),
        "epochs": spec["epochs"], "epochs_run": len(hist),
        "convergence_epoch": None if diverged else int(hist["epoch"].iloc[conv]),
        "best_val_accuracy": best, "final_val_accuracy": float(hist["val_accuracy"].iloc[-1]),
        "params": params, "backend": "tensorflow", "device": "CPU",
        "versions": {"python": "3.11.9", "keras": "3.15.1", "tensorflow": "2.21.0",
                     "numpy": "2.1.0"},
        "diverged": diverged, "diverged_epoch": diverged_epoch,
        "best_epoch": None if not spec["validation_size"] else int(hist["val_accuracy"].idxmax()) + 1,
    }
    evaluation = {
        "run_id": run_id, "test_accuracy": test_acc, "test_loss": test_loss,
        "class_names": names,
        "per_class_accuracy": {c: float(cm[i, i] / max(cm[i].sum(), 1)) for i, c in enumerate(names)},
        "confusion_matrix": cm.tolist(),
        "labels": LABELS.tolist(), "predictions": pred.tolist(),
        "inference_images_per_second": 2500.0 + spec["seed"], "inference_batch_size": 256,
    }
    # the best validation epoch's model: a little better than the last epoch's where the
    # validation set is held out (the same model where it is the test set)
    best_pred = pred if diverged or not spec["validation_size"] else \
        predictions_for(rng, min(1.0, test_target + 0.004))
    evaluation["best_model"] = {"epoch": metrics["best_epoch"],
                                "test_accuracy": float(np.mean(best_pred == LABELS)),
                                "test_loss": test_loss, "predictions": best_pred.tolist()}
    (d / "run.json").write_text(json.dumps(spec, indent=2))
    hist.to_csv(d / "history.csv", index=False)
    (d / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (d / "evaluation.json").write_text(json.dumps(evaluation, indent=2))
    return d


def make_runs(root, class_names=None, hostile_run=False, only=None) -> list[Path]:
    """Write the synthetic runs under ``root``; return the run folders.

    ``class_names`` replaces the CIFAR-10 names in evaluation.json (e.g. to test escaping).
    ``hostile_run`` adds an extra-role run (adam-weird-s0) whose label and key adjustments
    contain markup.
    ``only`` (a collection of run ids) keeps just those runs, for degenerate grids.
    """
    root = Path(root)
    dirs = []
    for opt, variant, role, epochs, seeds in ARMS:
        for seed, target in enumerate(seeds):
            spec = _spec(opt, variant, role, seed, epochs)
            if only is not None and spec["run_id"] not in only:
                continue
            div = DIVERGED.get(spec["run_id"])
            test_acc, val_final = target if target is not None else (None, 0.1)
            dirs.append(write_run(root, spec, test_acc, val_final, class_names, div))
    if hostile_run and (only is None or "adam-weird-s0" in only):
        spec = _spec("adam", "weird", "extra", 0, 4, label=HOSTILE)
        spec["key_adjustments"] = HOSTILE
        dirs.append(write_run(root, spec, 0.6, 0.6, class_names))
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


#: A config in the shape of config/config.yaml (top-level keys), with one hostile string.
SAMPLE_CONFIG = {
    "data_source": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "validation_size": 5000, "seeds": [0, 1], "scale": "reduced",
    "verdicts": {"confidence": 0.95, "margin": 2.0, "val_target": 70.0,
                 "rising_epochs": 3, "rising_points": 0.5},
    "variants": {"final": {"role": "final", "epochs": 12, "note": HOSTILE}},
}
