"""The bench (bench/run.py): its quick mode end to end, its table, its readers and its command
line; and the pieces of the fast recipe it measures (config/fast.yaml)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


@pytest.mark.dag
@pytest.mark.slow
def test_quick_bench_measures_every_part(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--fast",
                           "--out", str(tmp_path)], cwd=ROOT, text=True, capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((tmp_path / "quick.json").read_text())
    assert r["quick"] and "errors" not in r
    t = r["train"]
    ips = t["images_per_second"]
    assert t["ratio"] == pytest.approx(ips["library"] / ips["fit"]) and min(ips.values()) > 0
    assert len(t["epoch_s"]["fit"]) == len(t["epoch_s"]["library"]) == t["epochs"] - 1  # epoch 1 left out
    assert min(t["call_s"].values()) > 0
    # the quick DAG is one chain of three jobs, run one at a time: its wall covers their sum
    d = r["dag"]
    assert d["jobs_by_rule"] == {"evaluate": 1, "prepare_data": 1, "train": 1}
    assert d["jobs_s"] == pytest.approx(sum(d["s_by_rule"].values()))
    assert d["ratio"] == pytest.approx(d["wall_s"] / d["jobs_s"]) and d["ratio"] >= 1
    assert d["noop_nothing_to_do"] and d["noop_s"] > 0
    f = r["flops"]
    m = f["models"]["tiny blocks"]
    assert f["peak_gflops"] > 0 and m["forward_flops"] > 0
    assert m["training_gflops"] == pytest.approx(3 * m["forward_flops"] * m["images_per_second"] / 1e9)
    p = r["parallel"]
    assert len(p["jobs_images_per_second"]) == p["n"] == 2 and p["overlap_s"] > 0
    assert p["ratio"] == pytest.approx(sum(p["jobs_images_per_second"]) / p["single_images_per_second"])
    (run,) = r["fast"]["runs"]  # through the workflow, read from the run's own files
    assert run["run"] == "nesterov-fast-s0" and run["epochs"] == 2
    assert 0 <= run["test_accuracy"] <= 1 and 0 < run["train_s"] < run["job_s"]
    assert "--configfile config/config.yaml config/fast.yaml" in r["fast"]["command"]
    table = (tmp_path / "quick.md").read_text()
    assert table.startswith(f"commit {r['provenance']['commit']}") and table.rstrip().endswith(proc.stdout.strip())
    for measurement in ("library train() / bare model.fit", "smoke DAG wall", "no-op rerun", "fp32 matmul peak",
                        "training FLOP/s: tiny blocks", "2 jobs x 1 thread", "fast recipe nesterov-fast-s0",
                        "fast recipe, mean"):
        assert measurement in table


def test_table_shows_each_measurement_with_its_numbers():
    import run

    r = {"threads": 2,
         "train": {"run": "adam-initial-s0", "batch": 64, "n_train": 9000, "epochs": 4, "ratio": 1.0123,
                   "images_per_second": {"library": 2330.4, "fit": 2302.2}, "call_s": {"library": 12.34, "fit": 11.5}},
         "dag": {"jobs_by_rule": {"prepare_data": 1, "train": 11}, "ratio": 1.049, "wall_s": 145.6,
                 "jobs_s": 138.8, "s_by_rule": {"prepare_data": 7.9, "train": 130.9}, "noop_s": 1.43,
                 "noop_nothing_to_do": True},
         "flops": {"threads": 2, "peak_gflops": 214.0, "models": {"blocks": {
             "forward_flops": 21.2e6, "batch": 64, "images_per_second": 1682.0, "training_gflops": 107.0}}},
         "fast": {"runs": [{"run": f"nesterov-fast-s{i}", "epochs": 8, "train_s": s, "job_s": s + 20,
                            "images_per_second": 1351.0, "test_accuracy": a}
                           for i, (s, a) in enumerate([(266.5, 0.8095), (317.9, 0.8191)])]}}
    rows = run.table(r).values.tolist()
    assert rows == [
        ["library train() / bare model.fit, images/s per epoch",
         "adam-initial-s0, batch 64, 2 threads, 9000 images, epochs 2-4",
         "1.012 (2330 / 2302); whole call 12.3 s / 11.5 s"],
        ["smoke DAG wall / sum of its jobs' benchmark s", "12 jobs, --cores 2, trainings one at a time",
         "1.049 (145.6 s / 138.8 s)"],
        ["jobs' benchmark s by rule", "", "prepare_data 7.9, train 130.9"],
        ["no-op rerun of the smoke DAG", "nothing to do", "1.43 s"],
        ["fp32 matmul peak (keras.ops.matmul)", "2 threads", "214 GFLOP/s"],
        ["training FLOP/s: blocks", "21.2 MFLOP/image forward, batch 64, 1682 images/s",
         "107.0 GFLOP/s = 50 % of peak"],
        ["fast recipe nesterov-fast-s0: test accuracy", "8 epochs, training 266 s (job 286 s), 1351 images/s",
         "80.95 %"],
        ["fast recipe nesterov-fast-s1: test accuracy", "8 epochs, training 318 s (job 338 s), 1351 images/s",
         "81.91 %"],
        ["fast recipe, mean ± sd of 2 seeds", "training 292 ± 36 s", "81.43 ± 0.68 %"],
    ]
    assert run.table({"threads": 2}).empty  # parts not measured have no rows


HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_benchmark(path: Path, *seconds: float) -> None:
    """A Snakemake benchmark TSV with one record per value (cpu_time unmeasured: "-")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + "".join(f"{s:.2f}\t0:00:00\t1\t2\t1\t1\t0\t0\t50\t-\n" for s in seconds))


def test_read_benchmarks_gives_each_record_its_rule_and_job(tmp_path):
    import run

    bench = tmp_path / "results" / "benchmarks"
    write_benchmark(bench / "train" / "adam-initial-s0.tsv", 10.5)
    write_benchmark(bench / "train" / "sgd-final-s1.tsv", 4.25, 3.75)  # repeat(2): two records
    write_benchmark(bench / "prepare_data.tsv", 2.5)
    table = run.read_benchmarks(tmp_path / "results")
    assert table[["rule", "job", "s"]].values.tolist() == [
        ["prepare_data", "", 2.5], ["train", "adam-initial-s0", 10.5],
        ["train", "sgd-final-s1", 4.25], ["train", "sgd-final-s1", 3.75]]
    assert table["cpu_time"].isna().all()
    assert run.overhead(42.0, table) == {"wall_s": 42.0, "jobs_s": 21.0, "ratio": 2.0,
                                         "s_by_rule": {"prepare_data": 2.5, "train": 18.5},
                                         "jobs_by_rule": {"prepare_data": 1, "train": 3}}
    empty = run.overhead(5.0, run.read_benchmarks(tmp_path / "absent"))
    assert empty["jobs_s"] == 0 and empty["ratio"] is None and empty["s_by_rule"] == {}


@pytest.mark.parametrize("args, message", [
    (["--only", "bogus"], "argument --only: invalid choice: 'bogus'"),
    (["--threads", "0"], "argument --threads: not a positive integer: '0'"),
    (["--data", "/nonexistent/cifar10.tar.gz"], "--data /nonexistent/cifar10.tar.gz: no such file or folder"),
    (["--seeds", "-1"], "--seeds must be non-negative"),
])
def test_command_line_rejects_bad_input_in_one_line(args, message, tmp_path, capsys):
    import run

    with pytest.raises(SystemExit) as stop:
        run.main([*args, "--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"bench: {message}") and err.count("\n") == 1 and err.endswith("\n")
    assert not (tmp_path / "out").exists()  # nothing measured, nothing written


def _cnnopt():
    from cnnopt.common import runtime

    runtime.configure(1)


def test_flop_count_of_a_known_model():
    _cnnopt()
    from worker import forward_flops

    from cnnopt.train import models

    model = models.build({"architecture": "blocks", "filters": [8], "dense": [16]})
    # conv 3->8 at 32x32 (3x3), then dense 8*16*16 -> 16 -> 10
    expected = 2 * (32 * 32 * 8 * 9 * 3 + 8 * 16 * 16 * 16 + 16 * 10)
    assert forward_flops(model) == expected


# --------------------------------------------------------------------------- the fast recipe


def _fast(**overrides) -> dict:
    from cnnopt.config import grid, schema

    fast = yaml.safe_load((ROOT / "config" / "fast.yaml").read_text())
    return schema.load(ROOT / "config" / "config.yaml", grid.deep_merge(fast, overrides))


def test_fast_config_layers_over_the_study_without_changing_its_runs():
    from cnnopt.config import grid, schema

    study_config = schema.load(ROOT / "config" / "config.yaml")
    study, layered = grid.expand_runs(study_config), grid.expand_runs(_fast())
    assert set(layered) == set(study) | {f"nesterov-fast-s{seed}" for seed in study_config["seeds"]}
    assert all(layered[rid] == spec for rid, spec in study.items())  # same specs: no reruns
    fast = layered["nesterov-fast-s0"]
    assert fast["model"]["architecture"] == "fast" and fast["schedule"]["type"] == "warmup_cosine"
    assert fast["optimizer_config"] == {"name": "sgd", "learning_rate": 0.2, "momentum": 0.9,
                                        "nesterov": True, "weight_decay": 0.0005}


def test_warmup_cosine_is_keras_cosine_decay_and_needs_decay_epochs():
    _cnnopt()
    from cnnopt.common.errors import ConfigError
    from cnnopt.train import optimizers

    spec = {"type": "warmup_cosine", "warmup_epochs": 1, "warmup_start": 0.1, "decay_epochs": 4,
            "alpha": 0.0}
    sched = optimizers.schedule(0.2, spec, steps_per_epoch=10)
    assert float(sched(0)) == pytest.approx(0.02)
    assert float(sched(10)) == pytest.approx(0.2)
    assert float(sched(30)) == pytest.approx(0.1, rel=1e-5)  # half way down the cosine
    assert float(sched(50)) == pytest.approx(0.0, abs=1e-7)
    assert optimizers.learning_rate_at(3, 0.2, spec) == pytest.approx(0.1, rel=1e-4)
    with pytest.raises(ConfigError, match="decay_epochs"):
        _fast(variants={"fast": {"schedule": {"decay_epochs": None}}})


def test_fast_model_augments_only_in_training_and_trains_with_label_smoothing(tmp_path):
    _cnnopt()
    import keras
    import pandas as pd
    from datasets import write_arrays

    from cnnopt.evaluate.scoring import evaluate
    from cnnopt.train import models
    from cnnopt.train.loop import train

    spec = {"architecture": "fast", "filters": [8, 16], "convs_per_block": 2, "stem": 4,
            "bn_momentum": 0.9, "augment_flip": True, "augment_translate": 2, "dropout": 0.1}
    model = models.build(spec)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds[:2] == ["RandomFlip", "RandomTranslation"] and kinds.count("Conv2D") == 5
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    assert np.allclose(keras.ops.convert_to_numpy(model.layers[1](x, training=False)), x)
    assert not np.allclose(keras.ops.convert_to_numpy(model.layers[1](x, training=True)), x)

    arrays = write_arrays(tmp_path / "arrays.npz", 20, 5, seed=3)
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
    train(run, arrays, outputs)
    history = pd.read_csv(outputs["history"])
    # the rate each epoch starts with: warm-up from 0.1 x 0.05, then the cosine from its peak
    assert history["learning_rate"].to_numpy() == pytest.approx([0.005, 0.05], rel=1e-4)
    evaluation = evaluate(outputs["model"], arrays, tmp_path / "evaluation.json", run)
    labels, predictions = np.array(evaluation["labels"]), np.array(evaluation["predictions"])
    assert len(labels) == 50 and np.array_equal(np.bincount(labels), [5] * 10)
    assert evaluation["test_accuracy"] == pytest.approx(np.mean(labels == predictions))
    assert np.array(evaluation["confusion_matrix"]).sum() == 50
