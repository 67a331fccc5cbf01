"""Evaluate a trained model on the test set: accuracy, loss, per class, confusion, speed."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import keras
import numpy as np

from cnnopt.common import files
from cnnopt.data import cifar10 as data
from cnnopt.data import splits

log = logging.getLogger("cnnopt.evaluate.scoring")


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts of (true class, predicted class) pairs; rows are true classes."""
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def _predicted(probs) -> np.ndarray:
    """The predicted class of each row of class probabilities (a NaN row predicts class 0)."""
    return np.nan_to_num(np.asarray(probs), nan=0.0).argmax(axis=1)


def _score(model_path: Path, x: np.ndarray, y: np.ndarray, spec: dict, batch_size: int) -> dict:
    """One pass of a saved model over the test images: predictions, probabilities, speed."""
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
    out = {"test_accuracy": float((pred == y).mean()), "test_loss": loss, "pred": pred,
           "seconds": seconds}
    if single_view is not None:  # the same scoring pass, without the mirror image
        out["test_accuracy_single_view"] = single_view
    return out


def evaluate(model_path: Path, arrays: Path, out: Path, spec: dict, batch_size: int = 256,
             best_model_path: Path | None = None, best_epoch: int | None = None) -> dict:
    """Score ``model_path`` (the last epoch's model) on the run's test set and write
    ``evaluation.json`` to ``out``; with ``best_model_path`` also the model of the epoch with
    the best validation accuracy (``best_epoch``; chosen by training, never by this score)."""
    run_id = spec["run_id"]
    ds = data.load(arrays)
    class_names = [str(c) for c in ds["class_names"]]
    sets = splits.for_run(ds, spec)
    x, y = sets["x_test"], sets["y_test"].astype(np.int64)
    last = _score(model_path, x, y, spec, batch_size)
    pred = last["pred"]
    cm = confusion_matrix(y, pred, len(class_names))
    per_class = cm.diagonal() / np.maximum(cm.sum(axis=1), 1)
    result = {
        "run_id": run_id,
        "test_accuracy": last["test_accuracy"],
        "test_loss": last["test_loss"],
        "class_names": class_names,
        "per_class_accuracy": {c: float(a) for c, a in zip(class_names, per_class, strict=True)},
        "confusion_matrix": cm.tolist(),
        # per image, in test-set order: what paired tests (McNemar) between two runs compare
        "labels": y.tolist(),
        "predictions": pred.tolist(),
        "inference_images_per_second": len(x) / last["seconds"],
        "inference_batch_size": batch_size,
    }
    if "test_accuracy_single_view" in last:
        result["test_accuracy_single_view"] = last["test_accuracy_single_view"]
    if best_model_path is not None:
        best = _score(best_model_path, x, y, spec, batch_size)
        result["best_model"] = {"epoch": best_epoch, "test_accuracy": best["test_accuracy"],
                                "test_loss": best["test_loss"],
                                "predictions": best["pred"].tolist()}
    log.info("run %s: test accuracy %.2f %% (last epoch)%s, %.0f images/s at inference", run_id,
             100 * result["test_accuracy"],
             f", {100 * result['best_model']['test_accuracy']:.2f} % (best validation epoch "
             f"{best_epoch})" if best_model_path is not None else "",
             result["inference_images_per_second"])
    files.write_json(out, result)
    return result
