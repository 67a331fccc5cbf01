"""Evaluate a trained model on the test set: accuracy, loss, per class, confusion, speed."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import keras
import numpy as np

from . import data, io, splits

log = logging.getLogger("cnnopt.evaluate")


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs; rows are true classes."""
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def _predicted(probs) -> np.ndarray:
    """The predicted class of each row of class probabilities (a NaN row predicts class 0)."""
    return np.nan_to_num(np.asarray(probs), nan=0.0).argmax(axis=1)


def evaluate(model_path: Path, arrays: Path, out: Path, spec: dict, batch_size: int = 256) -> dict:
    """Score ``model_path`` on the run's test set and write ``evaluation.json`` to ``out``."""
    run_id = spec["run_id"]
    ds = data.load(arrays)
    class_names = [str(c) for c in ds["class_names"]]
    sets = splits.select(ds, spec)
    x, y = sets["x_test"], sets["y_test"].astype(np.int64)
    model = keras.saving.load_model(model_path)
    model.predict(x[:batch_size], batch_size=batch_size, verbose=0)  # warm-up: compile first
    start = time.perf_counter()
    probs = model.predict(x, batch_size=batch_size, verbose=0)
    single_view = None
    if spec.get("model", {}).get("tta_flip"):  # test-time flip: average with the mirror image
        single_view = float((_predicted(probs) == y).mean())
        probs = (probs + model.predict(x[:, :, ::-1], batch_size=batch_size, verbose=0)) / 2
    seconds = time.perf_counter() - start
    probs = np.asarray(probs, dtype=np.float64)
    pred = _predicted(probs)
    picked = np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0)
    loss = float(-np.log(picked).mean()) if np.isfinite(probs).all() else float("nan")
    cm = confusion_matrix(y, pred, len(class_names))
    per_class = cm.diagonal() / np.maximum(cm.sum(axis=1), 1)
    result = {
        "run_id": run_id,
        "test_accuracy": float((pred == y).mean()),
        "test_loss": loss,
        "class_names": class_names,
        "per_class_accuracy": {c: float(a) for c, a in zip(class_names, per_class, strict=True)},
        "confusion_matrix": cm.tolist(),
        # per image, in test-set order: what paired tests (McNemar) between two runs compare
        "labels": y.tolist(),
        "predictions": pred.tolist(),
        "inference_images_per_second": len(x) / seconds,
        "inference_batch_size": batch_size,
    }
    if single_view is not None:  # the same scoring pass, without the mirror image
        result["test_accuracy_single_view"] = single_view
    log.info("run %s: test accuracy %.2f %%, %.0f images/s at inference",
             run_id, 100 * result["test_accuracy"], result["inference_images_per_second"])
    io.write_json(out, result)
    return result
