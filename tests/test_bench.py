"""The benchmark suite's cheapest mode runs end to end and prints the P1, P2 and P5 rows."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

NUMBER = re.compile(r"\d")


def test_quick_bench_prints_p1_p2_p5_with_numbers(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(out),
         "--study", str(tmp_path / "no-study")],
        cwd=ROOT, text=True, capture_output=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] not in ("id", "") and not set(cells[0]) <= {"-"}:
            rows.setdefault(cells[0], []).append(cells)
    for pid in ("P1", "P1a", "P2", "P2c", "P2d", "P2e", "P5a", "P5b", "P5c"):
        assert pid in rows, f"row {pid} missing from:\n{proc.stdout}"
        assert all(NUMBER.search(cells[2]) for cells in rows[pid]), rows[pid]
    result = json.loads(out.read_text())
    assert result["quick"] and result["p1"]["ratio"] > 0
    assert result["p2"]["prepare_data_jobs"] == 1 and result["p2"]["noop_smoke_nothing_to_do"]
    assert result["parallel"]["parallel_window_overlap_s"] > 0
    assert out.with_suffix(".md").read_text().count("| P") >= 9


def test_flop_count_of_a_known_model():
    from common import LIB  # noqa: F401  (puts the cnnopt library on sys.path)
    from cnnopt import runtime

    runtime.configure(1)
    import flops
    from cnnopt import models

    model = models.build({"architecture": "blocks", "filters": [8], "dense": [16]})
    # conv 3->8 at 32x32 (3x3), then dense 8*16*16 -> 16 -> 10
    expected = 2 * (32 * 32 * 8 * 9 * 3 + 8 * 16 * 16 * 16 + 16 * 10)
    assert flops.forward_flops(model) == expected
    assert flops.training_flops(model) == 3 * expected


def test_job_spans_and_benchmark_sums(tmp_path):
    import run

    log = """[Mon Nov 30 00:31:33 2026]
localrule prepare_data:
    jobid: 4
[Mon Nov 30 00:31:41 2026]
Finished jobid: 4 (Rule: prepare_data)
[Mon Nov 30 00:31:41 2026]
localrule figures:
    jobid: 7
[Mon Nov 30 00:31:50 2026]
Finished jobid: 7 (Rule: figures)
"""
    spans = run.job_spans(log)
    assert [(s["rule"], s["end"] - s["start"]) for s in spans] == [("prepare_data", 8), ("figures", 9)]
    bench = tmp_path / "results" / "benchmarks" / "train"
    bench.mkdir(parents=True)
    (bench / "a.tsv").write_text("s\th:m:s\n10.5\t0:00:10\n")
    (bench.parent / "prepare_data.tsv").write_text("s\th:m:s\n2.5\t0:00:02\n")
    result = run.overhead(20.0, tmp_path / "results", log)
    assert result["benchmark_sum_s"] == 13.0 and result["ratio"] == np.float64(20 / 13)
    assert result["jobs_without_benchmark_s"] == {"figures": 9}


# --------------------------------------------------------------------------- P4 recipe pieces


def _cnnopt():
    from common import LIB  # noqa: F401
    from cnnopt import runtime

    runtime.configure(1)


def test_fast_config_layers_over_the_study_without_changing_its_runs():
    _cnnopt()
    from common import load_config
    from cnnopt import config as cnnconfig

    study = cnnconfig.expand_runs(load_config("config/config.yaml"))
    layered = cnnconfig.expand_runs(load_config("config/config.yaml", "config/fast.yaml"))
    seeds = load_config("config/config.yaml")["seeds"]
    assert set(layered) == set(study) | {f"nesterov-fast-s{seed}" for seed in seeds}
    assert all(layered[rid] == spec for rid, spec in study.items())  # same specs: no reruns
    fast = layered["nesterov-fast-s0"]
    assert fast["model"]["architecture"] == "fast" and fast["schedule"]["type"] == "warmup_cosine"
    assert fast["optimizer_config"] == {"name": "sgd", "learning_rate": 0.2, "momentum": 0.9,
                                        "nesterov": True, "weight_decay": 0.0005}


def test_warmup_cosine_is_keras_cosine_decay_and_needs_decay_epochs():
    _cnnopt()
    from common import load_config
    from cnnopt import optimizers
    from cnnopt.errors import ConfigError

    spec = {"type": "warmup_cosine", "warmup_epochs": 1, "warmup_start": 0.1, "decay_epochs": 4,
            "alpha": 0.0}
    sched = optimizers.schedule(0.2, spec, steps_per_epoch=10)
    assert float(sched(0)) == pytest.approx(0.02)
    assert float(sched(10)) == pytest.approx(0.2)
    assert float(sched(30)) == pytest.approx(0.1, rel=1e-5)  # half way down the cosine
    assert float(sched(50)) == pytest.approx(0.0, abs=1e-7)
    assert optimizers.learning_rate_at(3, 0.2, spec) == pytest.approx(0.1, rel=1e-4)
    with pytest.raises(ConfigError, match="decay_epochs"):
        load_config("config/config.yaml", "config/fast.yaml",
                    overrides={"variants": {"fast": {"schedule": {"decay_epochs": None}}}})


def test_fast_model_augments_only_in_training_and_trains_with_label_smoothing(tmp_path):
    _cnnopt()
    import keras
    import pandas as pd
    from datasets import make_arrays

    from cnnopt import models
    from cnnopt.evaluate import evaluate
    from cnnopt.train import train

    spec = {"architecture": "fast", "filters": [8, 16], "convs_per_block": 2, "stem": 4,
            "bn_momentum": 0.9, "augment_flip": True, "augment_translate": 2, "dropout": 0.1}
    model = models.build(spec)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds[:2] == ["RandomFlip", "RandomTranslation"] and kinds.count("Conv2D") == 5
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    assert np.allclose(keras.ops.convert_to_numpy(model.layers[1](x, training=False)), x)
    assert not np.allclose(keras.ops.convert_to_numpy(model.layers[1](x, training=True)), x)

    arrays = tmp_path / "arrays.npz"
    np.savez(arrays, class_names=np.array([f"c{i}" for i in range(10)]),
             **make_arrays(n_train_per_class=20, n_test_per_class=5, seed=3))
    run = {"run_id": "t", "optimizer": "sgd", "variant": "fast", "seed": 0, "role": "extra",
           "model": {**spec, "label_smoothing": 0.1, "tta_flip": True},
           "optimizer_config": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9,
                                "nesterov": True},
           "schedule": {"type": "warmup_cosine", "warmup_epochs": 1, "warmup_start": 0.1,
                        "decay_epochs": 1, "alpha": 0.0},
           "epochs": 2, "batch_size": 32, "validation_size": 20, "split_seed": 0,
           "max_train_images": 0, "max_test_images": 0, "deterministic": False, "convergence_tolerance": 1.0}
    outputs = {name: tmp_path / f"{name}.out" for name in ("history", "metrics", "spec")}
    outputs["model"] = tmp_path / "model.keras"
    metrics = train(run, arrays, outputs)
    history = pd.read_csv(outputs["history"])
    # the rate each epoch starts with: warm-up from 0.1 x 0.05, then the cosine from its peak
    assert history["learning_rate"].to_numpy() == pytest.approx([0.005, 0.05], rel=1e-4)
    evaluation = evaluate(outputs["model"], arrays, tmp_path / "evaluation.json", run)
    labels, predictions = np.array(evaluation["labels"]), np.array(evaluation["predictions"])
    assert len(labels) == 50 and np.array_equal(np.bincount(labels), [5] * 10)
    assert evaluation["test_accuracy"] == pytest.approx(np.mean(labels == predictions))
    assert np.array(evaluation["confusion_matrix"]).sum() == 50


def test_read_study_takes_wall_time_and_benchmarks(tmp_path):
    import run

    study = tmp_path / "study"
    (study / "results" / "benchmarks" / "train").mkdir(parents=True)
    (study / "results" / "benchmarks" / "train" / "a-s0.tsv").write_text("s\th:m:s\n1500\t0:25:00\n")
    (study / "results" / "benchmarks" / "prepare_data.tsv").write_text("s\th:m:s\n8\t0:00:08\n")
    (tmp_path / "study.start").write_text("1000\n")
    (tmp_path / "study.end").write_text("2800\n")
    result = run.read_study(study)
    assert result["wall_min"] == 30 and result["benchmark_sum_s"] == 1508
    assert run.read_study(tmp_path / "absent") is None
