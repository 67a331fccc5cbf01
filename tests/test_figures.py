"""Figures: every PNG is written, valid and not blank; each names the runs it was drawn from,
and the single-run figures show the runs fixed without the test set (first seed; the shown
run chosen on validation accuracy)."""

import json

import fakeruns
import matplotlib.image as mpimg
import numpy as np
import pytest

from cnnopt.common.errors import CnnoptError
from cnnopt.common.registry import GRID_ROLES
from cnnopt.common.runs import read_runs, shown_run
from cnnopt.figures import draw as figs
from cnnopt.judge import aggregate as agg

# one worker builds this file's module fixtures (the fake study and its figures) once: with
# `--dist loadgroup` (the quick run in the README) its tests stay together
pytestmark = pytest.mark.xdist_group("figures")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamax")


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fig")
    dirs = fakeruns.make_runs(root / "runs")
    t = root / "tables"
    agg.aggregate(dirs, t / "runs.csv", t / "table1.csv", t / "ablation.csv", t / "summary.json",
                  t / "claims.csv", t / "strata.csv")
    named = {n: root / "figures" / f"{n}.png" for n in figs.FIGURES}
    per_opt = {o: root / "figures" / f"{figs.optimizer_figure_name(o)}.png" for o in OPTIMIZERS}
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
    run = outputs["by_id"]["sgd-initial-s1"]
    figs.optimizer_curves(run, tmp_path / "a.png")
    figs.confusion_matrix(run, tmp_path / "c.png")
    figs.lr_schedules(outputs["dirs"][:3], tmp_path / "l.png")
    for name in ("a", "c", "l"):
        _check_png(tmp_path / f"{name}.png")
        assert figs.drawn_runs(tmp_path / f"{name}.png")
    assert figs.drawn_runs(tmp_path / "a.png") == figs.drawn_runs(tmp_path / "c.png") == ["sgd-initial-s1"]
    assert figs.drawn_runs(tmp_path / "l.png") == [d.name for d in outputs["dirs"][:3]]


def test_comparison_figures_draw_every_non_ablation_run(outputs):
    table = read_runs(outputs["dirs"]).table
    expected = list(table.loc[table["role"] != "ablation", "run_id"])
    assert "adam-final_no_dropout-s0" not in expected and "rmsprop-final-s1" in expected
    for name in ("val_accuracy_vs_epoch", "val_accuracy_vs_seconds", "lr_schedules"):
        assert figs.drawn_runs(outputs["named"][name]) == expected, name


def test_rendering_is_deterministic_and_run_specific(outputs, tmp_path):
    """The premise of the comparisons below: same run, same pixels; other run, other pixels."""
    a, b = outputs["by_id"]["adam-final-s0"], outputs["by_id"]["adam-final-s1"]
    for name, d in (("a1", a), ("a2", a), ("b", b)):
        figs.optimizer_curves(d, tmp_path / f"{name}.png")
        figs.confusion_matrix(d, tmp_path / f"c{name}.png")
    assert _same_image(tmp_path / "a1.png", tmp_path / "a2.png")
    assert _same_image(tmp_path / "ca1.png", tmp_path / "ca2.png")
    assert not _same_image(tmp_path / "a1.png", tmp_path / "b.png")
    assert not _same_image(tmp_path / "ca1.png", tmp_path / "cb.png")


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_optimizer_figure_shows_the_first_seed(outputs, opt):
    finals = {int(_json(d / "run.json")["seed"]): d.name for d in outputs["dirs"]
              if _json(d / "run.json")["optimizer"] == opt and _json(d / "run.json")["role"] == "final"}
    assert sorted(finals) == [0, 1]
    assert figs.drawn_runs(outputs["per_opt"][opt]) == [finals[0]]


def test_first_seed_even_when_seed_1_scores_higher(outputs):
    acc = {s: _json(outputs["by_id"][f"adam-final-s{s}"] / "evaluation.json")["test_accuracy"]
           for s in (0, 1)}
    assert acc[1] > acc[0]  # the fake makes seed 1 the better one on the test set
    assert figs.drawn_runs(outputs["per_opt"]["adam"]) == ["adam-final-s0"]


def test_confusion_figure_draws_the_run_chosen_by_validation(outputs):
    """The fake's best final run on the test set (Adam seed 1) is not the run with the best
    validation accuracy (Adamax): the confusion matrix is the latter's first seed."""
    finals = [d for d in outputs["dirs"] if _json(d / "run.json")["role"] == "final"]
    by_val, by_test = {}, {}
    for d in finals:
        opt = _json(d / "run.json")["optimizer"]
        by_val.setdefault(opt, []).append(_json(d / "metrics.json")["final_val_accuracy"])
        by_test[d.name] = _json(d / "evaluation.json")["test_accuracy"]
    best_opt = max(by_val, key=lambda o: np.mean(by_val[o]))
    best_test = max(by_test, key=by_test.get)
    assert best_opt == "adamax" and best_test == "adam-final-s1"
    drawn = figs.drawn_runs(outputs["named"]["confusion_best"])
    assert drawn == ["adamax-final-s0"] == [shown_run(read_runs(outputs["dirs"]).table)]
    assert _json(outputs["tables"] / "summary.json")["best"]["run_id"] == "adamax-final-s0"


def test_confusion_figure_follows_summary_best(outputs, tmp_path):
    t = outputs["tables"]
    summary = _json(t / "summary.json")
    other = "sgd-final-s1"
    assert summary["best"]["run_id"] != other
    summary["best"]["run_id"] = other
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    named = {n: tmp_path / f"{n}.png" for n in figs.FIGURES}
    figs.make_all(outputs["dirs"], t / "table1.csv", tmp_path / "summary.json", named, {})
    assert figs.drawn_runs(named["confusion_best"]) == [other]
    figs.confusion_matrix(outputs["by_id"][other], tmp_path / "expected.png")
    assert _same_image(named["confusion_best"], tmp_path / "expected.png")


def test_no_shown_run_draws_a_placeholder(outputs, tmp_path):
    t = outputs["tables"]
    summary = _json(t / "summary.json") | {"best": None}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    named = {n: tmp_path / f"{n}.png" for n in figs.FIGURES}
    figs.make_all(outputs["dirs"], t / "table1.csv", tmp_path / "summary.json", named, {})
    _check_png(named["confusion_best"])
    assert figs.drawn_runs(named["confusion_best"]) == []


def test_unknown_best_run_is_an_error(outputs, tmp_path):
    t = outputs["tables"]
    summary = _json(t / "summary.json")
    summary["best"]["run_id"] = "nadam-final-s0"
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    named = {n: tmp_path / f"{n}.png" for n in figs.FIGURES}
    with pytest.raises(CnnoptError, match="nadam-final-s0"):
        figs.make_all(outputs["dirs"], t / "table1.csv", tmp_path / "summary.json", named,
                      {"adam": tmp_path / "optimizer_adam.png"})
    assert not list(tmp_path.glob("*.png"))  # found before anything is drawn


def test_unknown_optimizer_figure_is_an_error(outputs, tmp_path):
    t = outputs["tables"]
    named = {n: tmp_path / f"{n}.png" for n in figs.FIGURES}
    with pytest.raises(CnnoptError, match="nadam"):
        figs.make_all(outputs["dirs"], t / "table1.csv", t / "summary.json", named,
                      {"adam": tmp_path / "optimizer_adam.png", "nadam": tmp_path / "optimizer_nadam.png"})
    assert not list(tmp_path.glob("*.png"))


def test_figure_names():
    assert len(set(figs.FIGURES)) == len(figs.FIGURES)
    for opt in ("adam", "my_opt"):
        name = figs.optimizer_figure_name(opt)
        assert name not in figs.FIGURES and figs.figure_optimizer(name) == opt
    assert figs.figure_optimizer("final_accuracy") is None


def test_every_role_has_a_line_style():
    assert set(figs.ROLE_STYLES) == set(GRID_ROLES)  # the study's figures show grid runs
    solid = [r for r, s in figs.ROLE_STYLES.items() if s == "-"]
    assert solid == ["final"]  # the report's captions say final runs are the solid lines


def test_each_optimizer_of_a_study_gets_its_own_color():
    paper = figs.palette(OPTIMIZERS)
    assert paper == {o: figs.COLORS[o] for o in OPTIMIZERS}
    study = [*OPTIMIZERS, "nadam", "adagrad", "adadelta", "ftrl", "lion", "lamb"]
    colors = figs.palette(study)
    assert len(set(colors.values())) == len(study) == 10
    # the paper's optimizers keep their colors whatever else the study has
    assert all(colors[o] == paper[o] for o in OPTIMIZERS)
    # the others take spare colors, by name, not by the order they come in
    assert figs.palette(reversed(study)) == colors
    assert set(colors[o] for o in study[4:]) == set(figs.SPARE)


def test_a_search_figure_joins_only_the_scores_of_one_rung(tmp_path):
    import pandas as pd

    # successive halving: six candidates score at rung 1, two go on to rung 2, one to the
    # final budget (rung 3); one candidate diverged at rung 1
    rates = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]
    rungs = [0, 1, 2, 0, 0, 0]
    table = pd.DataFrame({
        "search": "b", "optimizer": "adam", "learning_rate": rates,
        "run_id": [f"adam-b_lr{r}_e{[1, 3, 8][k]}-s0" for r, k in zip(rates, rungs, strict=True)],
        "score": [40.0, 60.0, 72.0, 45.0, 30.0, float("nan")],
        "diverged": [False] * 5 + [True], "chosen": [False, False, True, False, False, False],
        "at_edge": False, "rung": rungs})
    lines = {line["rung"]: line for line in figs.rung_lines(table)}
    assert sorted(lines) == [0, 1, 2]
    assert lines[0]["rates"] == [1e-4, 3e-3, 1e-2] and lines[0]["scores"] == [40.0, 45.0, 30.0]
    assert lines[1]["rates"] == [3e-4] and lines[2]["scores"] == [72.0]
    # without rungs (no halving), every candidate lies on one line
    assert len(figs.rung_lines(table.drop(columns="rung"))) == 1
    csv = tmp_path / "tuning_candidates.csv"
    table.to_csv(csv, index=False)
    out = figs.tuning_curves(csv, "b", tmp_path / "tuning_b.png")
    _check_png(out)
    assert figs.drawn_runs(out) == list(table["run_id"])
