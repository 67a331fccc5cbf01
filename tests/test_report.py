"""Report: sections, Table 1 beside the paper, embedded figures, escaping, atomic output."""

import re

import pytest

import fakeruns
from cnnopt import aggregate as agg
from cnnopt import figures as figs
from cnnopt import report
from cnnopt.errors import CnnoptError
from cnnopt.paper import PAPER_TABLE1

from conftest import ROOT

TEMPLATE = ROOT / "report" / "template.html.j2"
HOSTILE_CLASSES = fakeruns.CLASS_NAMES[:9] + [fakeruns.HOSTILE]
PROVENANCE = {"commit": "0123abc", "hostname": "testhost", "platform": "Linux",
              "generated": "2024-01-01T00:00:00+00:00", "snakemake_version": "9.27.1"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    dirs = fakeruns.make_runs(root / "runs", class_names=HOSTILE_CLASSES, hostile_run=True)
    t = root / "tables"
    agg.aggregate(dirs, t / "runs.csv", t / "table1.csv", t / "ablation.csv", t / "summary.json")
    named = {n: root / "figures" / f"{n}.png" for n in figs.FIGURES}
    per_opt = {o: root / "figures" / f"optimizer_{o}.png" for o in ("adam", "sgd", "rmsprop", "adamax")}
    written = figs.make_all(dirs, t / "table1.csv", t / "summary.json", named, per_opt)
    tables = {n: t / f"{n}.csv" for n in ("runs", "table1", "ablation")} | {"summary": t / "summary.json"}
    return {"root": root, "dirs": dirs, "tables": tables, "figures": written}


def _render(inputs, out, canonical=False, template=TEMPLATE):
    manifest = fakeruns.make_manifest(inputs["root"] / f"manifest-{canonical}.json",
                                      canonical=canonical, class_names=HOSTILE_CLASSES)
    return report.render(template, inputs["tables"], inputs["figures"], inputs["dirs"], manifest,
                         fakeruns.SAMPLE_CONFIG, out, PROVENANCE)


@pytest.fixture(scope="module")
def html(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "report.html"
    _render(inputs, out)
    return out.read_text(encoding="utf-8")


def test_sections_present(html):
    for heading in ("Summary", "Methodology", "Results", "Conclusions", "Reproducibility",
                    "Table 1", "Regularization ablation", "Learning-rate schedule", "Baseline"):
        assert heading in html, heading
    for label in ("Adam", "SGD", "RMSprop", "Adamax"):
        assert f"<h4>{label}</h4>" in html


def test_table1_rows_show_ours_and_paper(html, inputs):
    import pandas as pd
    table = pd.read_csv(inputs["tables"]["table1"])
    section = html.split("Table 1: initial and final accuracy")[1].split("Regularization ablation")[0]
    for row in table.itertuples():
        ours = report.fmt(row.final)
        paper = f"{PAPER_TABLE1[row.optimizer]['final']:.2f}"
        pattern = rf"<td>{row.label}</td>.*?{re.escape(ours)}.*?<td class=\"n\">{paper}</td>"
        assert re.search(pattern, section, re.S), row.optimizer
        assert f"{PAPER_TABLE1[row.optimizer]['initial']:.2f}" in section


def test_figures_are_embedded_and_no_external_links(html, inputs):
    assert html.count('src="data:image/png;base64,') == len(inputs["figures"])
    srcs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert all(s.startswith("data:") for s in srcs), [s[:40] for s in srcs if not s.startswith("data:")]
    assert "<link" not in html and "<script" not in html.replace("&lt;script", "")


def test_hostile_names_are_escaped(html):
    assert fakeruns.HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_non_canonical_notice(html, inputs, tmp_path):
    assert "Not the canonical archive" in html
    out = _render(inputs, tmp_path / "canonical.html", canonical=True)
    assert "Not the canonical archive" not in out.read_text(encoding="utf-8")


def test_diverged_run_is_named_not_numbered(html):
    assert "diverged at epoch 3" in html
    assert "rmsprop-final-s1" in html


def test_computed_conclusions(html):
    section = html.split('id="conclusions"')[1].split('id="reproducibility"')[0]
    assert "highest final test accuracy" in section
    assert "ranking" in section
    assert "Regularization: batch norm" in section  # the largest gain in the synthetic ablation


def test_provenance_and_config(html):
    assert "0123abc" in html and "9.27.1" in html
    assert "validation_size: 5000" in html


def test_failed_render_leaves_no_file(inputs, tmp_path):
    out = tmp_path / "report.html"
    with pytest.raises(CnnoptError, match="template"):
        _render(inputs, out, template=tmp_path / "missing.html.j2")
    bad = tmp_path / "bad.html.j2"
    bad.write_text("{{ no_such_value }}")
    with pytest.raises(CnnoptError):
        _render(inputs, out, template=bad)
    assert list(tmp_path.iterdir()) == [bad]


def test_collect_provenance_without_git(tmp_path):
    prov = report.collect_provenance(tmp_path, "9.0")
    assert prov["commit"] is None and prov["snakemake_version"] == "9.0"
    assert prov["hostname"] and prov["generated"]


def test_minimal_grid_end_to_end(tmp_path):
    """A baseline and one final run only: no Table 1 rows, no ablation; every stage still works."""
    dirs = fakeruns.make_runs(tmp_path / "runs", only={"adam-baseline-s0", "adam-final-s0"})
    t = tmp_path / "tables"
    agg.aggregate(dirs, t / "runs.csv", t / "table1.csv", t / "ablation.csv", t / "summary.json")
    named = {n: tmp_path / "figures" / f"{n}.png" for n in figs.FIGURES}
    written = figs.make_all(dirs, t / "table1.csv", t / "summary.json", named,
                            {"adam": tmp_path / "figures" / "optimizer_adam.png"})
    tables = {n: t / f"{n}.csv" for n in ("runs", "table1", "ablation")} | {"summary": t / "summary.json"}
    manifest = fakeruns.make_manifest(tmp_path / "manifest.json")
    out = report.render(TEMPLATE, tables, written, dirs, manifest, {}, tmp_path / "r.html", PROVENANCE)
    html = out.read_text(encoding="utf-8")
    assert "No ablation runs were configured" in html
    assert "no ranking can be given" in html
    assert html.count("data:image/png;base64,") == len(written) == 6
