"""Stratified splits and subsets of a labelled array set, repeatable from a seed."""

from __future__ import annotations

import numpy as np

from cnnopt.common.errors import CnnoptError


def stratified_split(y: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, picked): ``size`` picked items, each class in proportion to its count."""
    if size <= 0:
        return np.arange(len(y)), np.arange(0)
    if size >= len(y):
        raise CnnoptError(f"cannot set aside {size} of only {len(y)} images")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    share = counts / len(y) * size
    quota = np.floor(share).astype(int)
    # the remainder goes to the classes with the largest fractional share
    order = np.argsort(-(share - quota), kind="stable")
    quota[order[: size - quota.sum()]] += 1
    picked = np.concatenate(
        [rng.permutation(np.flatnonzero(y == c))[:q] for c, q in zip(classes, quota, strict=True)]
    )
    picked.sort()
    return np.setdiff1d(np.arange(len(y)), picked, assume_unique=True), picked


def subset(y: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Indices of a stratified subset of at most ``limit`` items (all of them if 0)."""
    if not limit or limit >= len(y):
        return np.arange(len(y))
    return stratified_split(y, limit, seed)[1]


def for_run(ds: dict, spec: dict) -> dict:
    """The arrays a run uses: training, validation and test sets after splits and limits.

    ``validation_size`` images are held out of the training set (stratified, ``split_seed``);
    with 0 the test set validates, as the paper probably did. ``max_train_images`` and
    ``max_test_images`` (0 = all) shrink the sets for quick runs.
    """
    seed = spec.get("split_seed", 0)
    rest, val = stratified_split(ds["y_train"], spec.get("validation_size", 0), seed)
    rest = rest[subset(ds["y_train"][rest], spec.get("max_train_images", 0), seed)]
    test = subset(ds["y_test"], spec.get("max_test_images", 0), seed)
    out = {
        "x_train": ds["x_train"][rest], "y_train": ds["y_train"][rest],
        "x_test": ds["x_test"][test], "y_test": ds["y_test"][test],
    }
    if len(val):
        out["x_val"], out["y_val"] = ds["x_train"][val], ds["y_train"][val]
    else:
        out["x_val"], out["y_val"] = out["x_test"], out["y_test"]
    return out
