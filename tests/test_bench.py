"""The benchmark suite's cheapest mode runs end to end and prints the P1, P2 and P5 rows."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

NUMBER = re.compile(r"\d")


def _table_rows(text: str) -> dict[str, list[list[str]]]:
    """The rows of ``run.table``'s Markdown table in ``text``, by id, each as its five cells."""
    lines = [line.strip() for line in text.splitlines() if line.startswith("|")]
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["id", "measure", "value", "goal", "met"]
    assert set(lines[1]) <= {"|", "-"}
    rows: dict[str, list[list[str]]] = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 5, line
        rows.setdefault(cells[0], []).append(cells)
    return rows


@pytest.mark.dag
@pytest.mark.slow
def test_quick_bench_prints_p1_p2_p5_with_numbers(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(out),
         "--study", str(tmp_path / "no-study")],
        cwd=ROOT, text=True, capture_output=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _table_rows(proc.stdout)
    for pid in ("P1", "P1a", "P2", "P2a", "P2c", "P2d", "P2e", "P5a", "P5b", "P5c"):
        assert pid in rows, f"row {pid} missing from:\n{proc.stdout}"
        assert all(NUMBER.search(cells[2]) for cells in rows[pid]), rows[pid]
    result = json.loads(out.read_text())
    assert result["quick"]
    p1, p2, par = result["p1"], result["p2"], result["parallel"]
    ips = p1["images_per_second"]
    assert p1["ratio"] == pytest.approx(ips["workflow"] / ips["bare"])
    assert p1["validation_share"] == pytest.approx(1 - ips["bare_validation"] / ips["bare"])
    # the quick DAG (one run, an image folder as source) is one chain of three benchmarked jobs
    assert p2["benchmark_jobs_by_rule"] == {"evaluate": 1, "prepare_data": 1, "train": 1}
    assert p2["prepare_data_jobs"] == p2["train_jobs"] == 1 and p2["noop_smoke_nothing_to_do"]
    assert p2["benchmark_sum_s"] == pytest.approx(sum(p2["benchmark_s_by_rule"].values()))
    assert p2["ratio"] == pytest.approx(p2["wall_s"] / p2["benchmark_sum_s"])
    assert p2["ratio"] >= 1  # a chain: its jobs cannot take longer than the whole run
    assert len(par["parallel_images_per_second"]) == par["n"] == 2
    assert par["parallel_total_images_per_second"] == pytest.approx(sum(par["parallel_images_per_second"]))
    assert par["ratio"] == pytest.approx(par["parallel_total_images_per_second"]
                                         / par["single_images_per_second"])
    assert par["parallel_window_overlap_s"] > 0
    assert result["provenance"]["commit"] == result["commit"]
    assert out.with_suffix(".md").read_text().count("| P") >= 10


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


HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_benchmark(path: Path, *records: tuple[float, float | None]) -> None:
    """A Snakemake benchmark TSV with one record per (seconds, cpu_time); None is written as "-"."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{s:.2f}\t0:00:00\t100.00\t200.00\t90.00\t95.00\t1.00\t2.00\t50.00\t"
             + ("-" if cpu is None else f"{cpu:.2f}") for s, cpu in records]
    path.write_text(HEADER + "\n".join(lines) + "\n")


def test_read_benchmarks_reads_every_record_with_its_rule_and_job(tmp_path):
    import run

    bench = tmp_path / "results" / "benchmarks"
    write_benchmark(bench / "train" / "adam-initial-s0.tsv", (10.5, 19.0))
    write_benchmark(bench / "train" / "sgd-final-s1.tsv", (4.25, None), (3.75, 6.5))  # repeat(2)
    write_benchmark(bench / "prepare_data.tsv", (2.5, 2.0))
    write_benchmark(bench / "report.tsv", (1.0, 0.5))
    table = run.read_benchmarks(tmp_path / "results")
    assert table[["file", "rule", "job", "s"]].values.tolist() == [
        ["prepare_data.tsv", "prepare_data", "", 2.5],
        ["report.tsv", "report", "", 1.0],
        ["train/adam-initial-s0.tsv", "train", "adam-initial-s0", 10.5],
        ["train/sgd-final-s1.tsv", "train", "sgd-final-s1", 4.25],
        ["train/sgd-final-s1.tsv", "train", "sgd-final-s1", 3.75],
    ]
    assert table["cpu_time"].isna().tolist() == [False, False, False, True, False]
    assert table["max_rss"].tolist() == [100.0] * 5 and table["h:m:s"].tolist() == ["0:00:00"] * 5

    result = run.overhead(44.0, table)
    assert result["benchmark_sum_s"] == 22.0 and result["ratio"] == 2.0
    assert result["benchmark_files"] == 4
    assert result["benchmark_s_by_rule"] == {"prepare_data": 2.5, "report": 1.0, "train": 18.5}
    assert result["benchmark_jobs_by_rule"] == {"prepare_data": 1, "report": 1, "train": 2}
    # the record without cpu_time is left out of both sums
    assert run.cpu_per_wall(table, "train") == pytest.approx((19.0 + 6.5) / (10.5 + 3.75))
    assert run.cpu_per_wall(table, "evaluate") is None


def test_read_benchmarks_of_a_run_without_benchmark_files(tmp_path):
    import run

    table = run.read_benchmarks(tmp_path / "results")
    assert table.empty and list(table.columns) == run.BENCHMARK_COLUMNS
    result = run.overhead(5.0, table)
    assert result["benchmark_sum_s"] == 0 and result["ratio"] is None
    assert result["benchmark_s_by_rule"] == {} and result["benchmark_files"] == 0


def test_table_shows_the_numbers_given_and_judges_the_goals():
    import run

    r = {"p2": {"train_jobs": 3, "ratio": 1.2, "wall_s": 36.0, "benchmark_sum_s": 30.0,
                "benchmark_s_by_rule": {"prepare_data": 2.0, "train": 25.5, "report": 2.5},
                "noop_smoke_s": 1.43, "dryrun_smoke_s": 1.3, "prepare_data_jobs": 1,
                "load": {"bytes": 185e6, "seconds_median": 0.47}},
         "study": {"wall_min": 58.3, "ratio": 1.002, "train_cpu_per_wall": 1.05},
         "p4": {"rows": [{"what": "fast", "value": "85.60 %", "goal": ">= 85.5 %", "met": True}]},
         "machine": {"cores": 2, "foreign_cpu_cores": 0.0}}
    rows = _table_rows(run.table(r))
    assert rows["P2"] == [["P2", "smoke DAG wall / sum of job benchmark s (3 trainings)",
                           "1.200 (36.0 s / 30.0 s)", "<= 1.15", "**no**"]]
    assert rows["P2a"][0][2] == "prepare_data 2.0 s, train 25.5 s, report 2.5 s"
    assert rows["P2c"][0][2] == "1.43 s / 1.30 s"  # numbers stay as formatted, "1.30" too
    assert rows["P2d"][0][2:] == ["1", "1", "yes"]
    assert rows["P2e"][0][1:] == ["training job's load of the cached arrays + split (185 MB)",
                                  "0.470 s", "< 1 s", "yes"]
    assert rows["P3"][0][2:] == ["58.3 min", "<= 60 min", "yes"]
    assert rows["P3a"][0][2] == "1.002; 1.05"
    assert rows["P4"] == [["P4", "fast", "85.60 %", ">= 85.5 %", "yes"]]
    assert rows["-"][0][2] == "0.00"
    assert "P1" not in rows and "P5a" not in rows  # parts not measured have no rows


def test_provenance_is_the_workflows():
    import snakemake
    from common import provenance

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    prov = provenance()
    assert prov["snakemake_version"] == snakemake.__version__
    if head.returncode == 0:
        assert prov["commit"].startswith(head.stdout.strip())


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
    train(run, arrays, outputs)
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
    bench = study / "results" / "benchmarks"
    write_benchmark(bench / "train" / "a-s0.tsv", (1000.0, 1500.0))
    write_benchmark(bench / "train" / "b-s0.tsv", (500.0, 600.0))
    write_benchmark(bench / "prepare_data.tsv", (8.0, 7.0))
    write_benchmark(bench / "figures.tsv", (4.0, 3.0))
    metrics = study / "results" / "runs" / "a-s0" / "metrics.json"
    metrics.parent.mkdir(parents=True)
    metrics.write_text(json.dumps({"run_id": "a-s0", "train_seconds": 990.0,
                                   "images_per_second": 900.0, "epochs_run": 8, "other": 1}))
    metrics.with_name("evaluation.json").write_text(json.dumps({"test_accuracy": 0.75}))
    (tmp_path / "study.start").write_text("1000\n")
    (tmp_path / "study.end").write_text("2800\n")
    result = run.read_study(study)
    assert result["wall_min"] == 30 and result["benchmark_sum_s"] == 1512
    assert result["ratio"] == pytest.approx(1800 / 1512)
    assert result["benchmark_s_by_rule"] == {"figures": 4.0, "prepare_data": 8.0, "train": 1500.0}
    assert result["train_cpu_per_wall"] == pytest.approx(2100 / 1500)
    assert result["runs"] == [{"run_id": "a-s0", "test_accuracy": 0.75, "train_seconds": 990.0,
                               "images_per_second": 900.0, "epochs_run": 8}]
    assert run.read_study(tmp_path / "absent") is None
