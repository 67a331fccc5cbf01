"""Figures: every PNG is written, valid and not blank, and the single-run figures show the
runs fixed in advance (first seed; the shown run chosen on validation accuracy)."""

import json

import matplotlib.image as mpimg
import numpy as np
import pytest

import fakeruns
from cnnopt import aggregate as agg
from cnnopt import figures as figs
from cnnopt.errors import CnnoptError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamax")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fig")
    dirs = fakeruns.make_runs(root / "runs")
    t = root / "tables"
    agg.aggregate(dirs, t / "runs.csv", t / "table1.csv", t / "ablation.csv", t / "summary.json",
                  t / "claims.csv")
    named = {n: root / "figures" / f"{n}.png" for n in figs.FIGURES}
    per_opt = {o: root / "figures" / f"optimizer_{o}.png" for o in OPTIMIZERS}
    written = figs.make_all(dirs, t / "table1.csv", t / "summary.json", named, per_opt)
    return {"root": root, "dirs": dirs, "tables": t, "named": named, "per_opt": per_opt,
            "written": written, "by_id": {d.name: d for d in dirs}}


def _check_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels[..., :3].std() > 0.01, f"{path} looks blank"


def _same_image(a, b) -> bool:
    pa, pb = mpimg.imread(a), mpimg.imread(b)
    return pa.shape == pb.shape and np.array_equal(pa, pb)


def _json(path):
    return json.loads(path.read_text())


def test_every_figure_is_a_nonblank_png(outputs):
    expected = set(outputs["named"].values()) | set(outputs["per_opt"].values())
    assert set(outputs["written"]) == expected
    for path in expected:
        _check_png(path)
    leftovers = [p for p in (outputs["root"] / "figures").iterdir() if p.suffix != ".png"]
    assert not leftovers


def test_single_figure_functions(outputs, tmp_path):
    run = outputs["dirs"][0]
    figs.optimizer_curves(run / "history.csv", run / "run.json", tmp_path / "a.png")
    figs.confusion_matrix(run / "evaluation.json", tmp_path / "c.png")
    figs.lr_schedules(outputs["dirs"][:3], tmp_path / "l.png")
    for name in ("a", "c", "l"):
        _check_png(tmp_path / f"{name}.png")


def test_rendering_is_deterministic_and_run_specific(outputs, tmp_path):
    """The premise of the comparisons below: same run, same pixels; other run, other pixels."""
    a, b = outputs["by_id"]["adam-final-s0"], outputs["by_id"]["adam-final-s1"]
    for name, d in (("a1", a), ("a2", a), ("b", b)):
        figs.optimizer_curves(d / "history.csv", d / "run.json", tmp_path / f"{name}.png")
        figs.confusion_matrix(d / "evaluation.json", tmp_path / f"c{name}.png")
    assert _same_image(tmp_path / "a1.png", tmp_path / "a2.png")
    assert _same_image(tmp_path / "ca1.png", tmp_path / "ca2.png")
    assert not _same_image(tmp_path / "a1.png", tmp_path / "b.png")
    assert not _same_image(tmp_path / "ca1.png", tmp_path / "cb.png")


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_optimizer_figure_shows_the_first_seed(outputs, tmp_path, opt):
    finals = {int(_json(d / "run.json")["seed"]): d for d in outputs["dirs"]
              if _json(d / "run.json")["optimizer"] == opt and _json(d / "run.json")["role"] == "final"}
    assert sorted(finals) == [0, 1]
    for seed, d in finals.items():
        figs.optimizer_curves(d / "history.csv", d / "run.json", tmp_path / f"s{seed}.png")
    assert _same_image(outputs["per_opt"][opt], tmp_path / "s0.png")
    assert not _same_image(outputs["per_opt"][opt], tmp_path / "s1.png")


def test_first_seed_even_when_seed_1_scores_higher(outputs):
    acc = {s: _json(outputs["by_id"][f"adam-final-s{s}"] / "evaluation.json")["test_accuracy"]
           for s in (0, 1)}
    assert acc[1] > acc[0]  # the fake makes seed 1 the better one on the test set
    runs = figs._load_runs(outputs["dirs"])
    assert figs.final_run_for(runs, "adam")["spec"]["run_id"] == "adam-final-s0"
    # the order of the list does not matter
    assert figs.final_run_for(list(reversed(runs)), "adam")["spec"]["run_id"] == "adam-final-s0"
    assert figs.final_run_for(runs, "rmsprop")["spec"]["run_id"] == "rmsprop-final-s0"
    with pytest.raises(CnnoptError, match="final"):
        figs.final_run_for(runs, "nadam")


def test_confusion_figure_draws_the_shown_run(outputs, tmp_path):
    summary = _json(outputs["tables"] / "summary.json")
    shown = summary["best"]["run_id"]
    best_test = max((d for d in outputs["dirs"] if _json(d / "run.json")["role"] == "final"),
                    key=lambda d: _json(d / "evaluation.json")["test_accuracy"]).name
    assert shown != best_test  # the fake tells validation and test choices apart
    figs.confusion_matrix(outputs["by_id"][shown] / "evaluation.json", tmp_path / "shown.png")
    figs.confusion_matrix(outputs["by_id"][best_test] / "evaluation.json", tmp_path / "test.png")
    assert _same_image(outputs["named"]["confusion_best"], tmp_path / "shown.png")
    assert not _same_image(outputs["named"]["confusion_best"], tmp_path / "test.png")


def test_confusion_figure_follows_summary_best(outputs, tmp_path):
    t = outputs["tables"]
    summary = _json(t / "summary.json")
    other = "sgd-final-s1"
    assert summary["best"]["run_id"] != other
    summary["best"]["run_id"] = other
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    named = {n: tmp_path / f"{n}.png" for n in figs.FIGURES}
    figs.make_all(outputs["dirs"], t / "table1.csv", tmp_path / "summary.json", named, {})
    figs.confusion_matrix(outputs["by_id"][other] / "evaluation.json", tmp_path / "expected.png")
    assert _same_image(named["confusion_best"], tmp_path / "expected.png")


def test_no_shown_run_draws_a_placeholder(outputs, tmp_path):
    t = outputs["tables"]
    summary = _json(t / "summary.json") | {"best": None}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    named = {n: tmp_path / f"{n}.png" for n in figs.FIGURES}
    figs.make_all(outputs["dirs"], t / "table1.csv", tmp_path / "summary.json", named, {})
    _check_png(named["confusion_best"])
    assert not _same_image(named["confusion_best"], outputs["named"]["confusion_best"])


def test_unknown_best_run_is_an_error(outputs, tmp_path):
    t = outputs["tables"]
    summary = _json(t / "summary.json")
    summary["best"]["run_id"] = "nadam-final-s0"
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    named = {n: tmp_path / f"{n}.png" for n in figs.FIGURES}
    with pytest.raises(CnnoptError, match="nadam-final-s0"):
        figs.make_all(outputs["dirs"], t / "table1.csv", tmp_path / "summary.json", named, {})


def test_unknown_optimizer_figure_is_an_error(outputs, tmp_path):
    t = outputs["tables"]
    named = {n: tmp_path / f"{n}.png" for n in figs.FIGURES}
    with pytest.raises(CnnoptError, match="nadam"):
        figs.make_all(outputs["dirs"], t / "table1.csv", t / "summary.json", named,
                      {"nadam": tmp_path / "optimizer_nadam.png"})
    assert not (tmp_path / "optimizer_nadam.png").exists()


def test_colors_are_stable():
    assert figs.color("adam") == figs.color("adam") != figs.color("sgd")
    assert figs.color("nadam") == figs.color("nadam")
