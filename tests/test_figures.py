"""Figures: every PNG is written, valid and not blank."""

import json

import matplotlib.image as mpimg
import pytest

import fakeruns
from cnnopt import aggregate as agg
from cnnopt import figures as figs
from cnnopt.errors import CnnoptError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fig")
    dirs = fakeruns.make_runs(root / "runs")
    t = root / "tables"
    agg.aggregate(dirs, t / "runs.csv", t / "table1.csv", t / "ablation.csv", t / "summary.json")
    named = {n: root / "figures" / f"{n}.png" for n in figs.FIGURES}
    per_opt = {o: root / "figures" / f"optimizer_{o}.png" for o in ("adam", "sgd", "rmsprop", "adamax")}
    written = figs.make_all(dirs, t / "table1.csv", t / "summary.json", named, per_opt)
    return {"root": root, "dirs": dirs, "tables": t, "named": named, "per_opt": per_opt,
            "written": written}


def _check_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels[..., :3].std() > 0.01, f"{path} looks blank"


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


def test_best_run_drives_confusion_figure(outputs):
    summary = json.loads((outputs["tables"] / "summary.json").read_text())
    assert summary["best"]["run_id"]
    _check_png(outputs["named"]["confusion_best"])


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
