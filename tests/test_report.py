"""Report: sections, the claims and deviations tables, Table 1 and the twins beside the
paper, embedded figures, escaping, atomic output; expectations read from the aggregate files."""

import re

import pandas as pd
import pytest
import yaml
from markupsafe import escape

import fakeruns
from cnnopt import aggregate as agg
from cnnopt import figures as figs
from cnnopt import report, verdicts
from cnnopt.errors import CnnoptError
from cnnopt.paper import PAPER_TABLE1

from conftest import ROOT

TEMPLATE = ROOT / "report" / "template.html.j2"
DEVIATIONS = ROOT / "workflow" / "lib" / "cnnopt" / "deviations.yaml"
HOSTILE_CLASSES = fakeruns.CLASS_NAMES[:9] + [fakeruns.HOSTILE]
PROVENANCE = {"commit": "0123abc", "hostname": "testhost", "platform": "Linux",
              "generated": "2024-01-01T00:00:00+00:00", "snakemake_version": "9.27.1"}
TABLES = ("claims", "runs", "table1", "ablation")


def _aggregate(dirs, t, **kw) -> dict:
    agg.aggregate(dirs, t / "runs.csv", t / "table1.csv", t / "ablation.csv", t / "summary.json",
                  t / "claims.csv", **kw)
    return {n: t / f"{n}.csv" for n in TABLES} | {"summary": t / "summary.json"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    dirs = fakeruns.make_runs(root / "runs", class_names=HOSTILE_CLASSES, hostile_run=True)
    tables = _aggregate(dirs, root / "tables")
    named = {n: root / "figures" / f"{n}.png" for n in figs.FIGURES}
    per_opt = {o: root / "figures" / f"optimizer_{o}.png" for o in ("adam", "sgd", "rmsprop", "adamax")}
    written = figs.make_all(dirs, tables["table1"], tables["summary"], named, per_opt)
    return {"root": root, "dirs": dirs, "tables": tables, "figures": written}


def _render(inputs, out, canonical=False, template=TEMPLATE, tables=None, config=None):
    manifest = fakeruns.make_manifest(inputs["root"] / f"manifest-{canonical}.json",
                                      canonical=canonical, class_names=HOSTILE_CLASSES)
    return report.render(template, tables or inputs["tables"], inputs["figures"], inputs["dirs"],
                         manifest, fakeruns.SAMPLE_CONFIG if config is None else config, out,
                         PROVENANCE)


@pytest.fixture(scope="module")
def html(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "report.html"
    _render(inputs, out)
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def claims(inputs):
    return pd.read_csv(inputs["tables"]["claims"])


def _section(html, start, end):
    assert start in html and end in html, (start, end)
    return html.split(start, 1)[1].split(end, 1)[0]


def test_sections_present_and_numbered(html):
    for heading in ('<h2 id="summary">1. Summary</h2>',
                    '<h2 id="claims">2. The paper\'s claims, judged</h2>',
                    "<h3>2.1 Deviations and assumptions</h3>",
                    '<h2 id="methodology">3. Methodology</h2>',
                    '<h2 id="results">4. Results</h2>',
                    "<h3>4.3 Table 1: initial and final accuracy</h3>",
                    "<h3>4.4 Twins: one ingredient at a time</h3>",
                    '<h2 id="conclusions">5. Conclusions</h2>'):
        assert heading in html, heading
    order = [html.index(f'<h2 id="{s}">') for s in
             ("summary", "claims", "methodology", "results", "conclusions", "reproducibility")]
    assert order == sorted(order)
    for label in ("Adam", "SGD", "RMSprop", "Adamax"):
        assert f"<h4>{label}</h4>" in html


def test_claims_table_has_a_row_per_claim_with_its_verdict(html, claims):
    section = _section(html, '<table id="claims-table">', "</table>")
    ids = [c["id"] for c in verdicts.load_claims()]
    assert list(claims["id"]) == ids
    assert re.findall(r'<tr id="claim-([^"]+)">', section) == ids
    rows = re.split(r'(?=<tr id="claim-)', section)[1:]
    for row, c in zip(rows, claims.itertuples()):
        css = c.verdict.replace(" ", "-")
        assert f'<span class="verdict {css}">{c.verdict}</span>' in row, c.id
        assert str(escape(c.claim)) in row, c.id
        assert str(escape(c.reason)) in row, c.id
    assert html.count('<tr id="claim-') == len(ids)
    assert "not-reproduced" in section  # a verdict with a space gets a dash in its class


def test_claims_table_numbers_match_claims_csv(html, claims):
    section = _section(html, '<table id="claims-table">', "</table>")
    rows = dict(zip(claims["id"], re.split(r'(?=<tr id="claim-)', section)[1:]))
    for c in claims.itertuples():
        cells = re.findall(r'<td class="n">([^<]*)</td>', rows[c.id])
        if c.kind == "value":
            assert cells[0] == report.fmt(c.paper), c.id
            assert cells[1] == report.pm(c.ours, c.std), c.id
            if pd.notna(c.ci_low):
                assert cells[3] == f"[{report.fmt(c.ci_low)}, {report.fmt(c.ci_high)}]", c.id
        elif pd.notna(c.ours):
            assert cells[1].startswith(report.signed(c.ours)), c.id
        assert cells[2] == str(int(c.n) if pd.notna(c.n) else 0), c.id


def test_deviations_table_is_filled_in(html):
    section = _section(html, '<table id="deviations">', "</table>")
    entries = yaml.safe_load(DEVIATIONS.read_text(encoding="utf-8"))
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", section, re.S)
    assert [r[0] for r in rows] == [str(escape(d["topic"])) for d in entries]
    for topic, paper, ours in rows:
        assert ours and "{" not in ours, (topic, ours)  # every placeholder filled
    data = dict((r[0], r[2]) for r in rows)
    assert data["Data"].startswith(str(escape("image-folder archive cifar10-jpeg.tar.gz")))
    assert "5,000" in data["Validation protocol"]  # from the config's validation_size


def test_table1_rows_show_ours_and_paper(html, inputs):
    table = pd.read_csv(inputs["tables"]["table1"])
    section = _section(html, "Table 1: initial and final accuracy", "Twins: one ingredient")
    for row in table.itertuples():
        ours = report.pm(row.final, row.final_std)
        paper = f"{PAPER_TABLE1[row.optimizer]['final']:.2f}"
        pattern = rf"<td>{row.label}</td>.*?{re.escape(ours)}</td><td class=\"n\">{paper}</td>"
        assert re.search(pattern, section, re.S), row.optimizer
        assert f"{PAPER_TABLE1[row.optimizer]['initial']:.2f}" in section


def test_twins_table_shows_each_delta(html, inputs):
    abl = pd.read_csv(inputs["tables"]["ablation"])
    section = _section(html, "Twins: one ingredient at a time", "4.5 Comparison")
    rows = re.findall(r"<tr><td>(final_no_\w+)</td>(.*?)</tr>", section, re.S)
    assert len(rows) == len(abl) > 0
    for (variant, rest), r in zip(rows, abl.itertuples()):
        assert variant == r.variant
        cells = re.findall(r'<td class="n">([^<]*)</td>', rest)
        assert cells[0] == report.pm(r.test_accuracy, r.test_accuracy_std)
        assert cells[1] == report.fmt(r.reference_accuracy)
        assert cells[2] == report.signed(r.delta)
        assert r.delta == pytest.approx(r.reference_accuracy - r.test_accuracy)


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


def test_diverged_run_is_named_and_counted(html, inputs):
    assert "diverged at epoch 3" in html
    assert "rmsprop-final-s1" in html
    table = pd.read_csv(inputs["tables"]["table1"]).set_index("optimizer")
    text = table.loc["rmsprop", "diverged_runs"]
    assert text.startswith("1 of ")
    assert f"({text}, counted in the means)" in html
    assert "they count in the means" in _section(html, '<div class="abstract">', "</div>")
    assert "left out of the means" not in html


def test_summary_counts_verdicts_and_scale(html, claims):
    summary = _section(html, '<div class="abstract">', "</div>")
    assert "at reduced scale" in summary
    counts = claims["verdict"].value_counts()
    assert str(escape(f"Of the paper's {len(claims)} claims (section 2):")) in summary
    for verdict, n in counts.items():
        assert f"{n} {verdict}" in summary, verdict


def test_paper_scale_is_said(inputs, tmp_path):
    tables = _aggregate(inputs["dirs"], tmp_path, scale="paper")
    out = _render(inputs, tmp_path / "paper.html", tables=tables)
    summary = _section(out.read_text(encoding="utf-8"), '<div class="abstract">', "</div>")
    assert "at paper scale" in summary and "at reduced scale" not in summary


def test_conclusions_group_claims_by_verdict(html, claims):
    section = _section(html, 'id="conclusions"', 'id="reproducibility"')
    items = re.findall(r"<li>(.*?)</li>", section, re.S)
    groups = {}
    for item in items:
        m = re.match(r"([A-Z][a-z ]+) \((\d+)\): ", item)
        if m and m.group(1).lower() in verdicts.VERDICTS:
            groups[m.group(1).lower()] = (int(m.group(2)), item)
    expected = claims.groupby("verdict")["claim"].apply(list).to_dict()
    assert set(groups) == set(expected)
    for verdict, texts in expected.items():
        n, item = groups[verdict]
        assert n == len(texts)
        for text in texts:
            assert str(escape(text)) in item, (verdict, text)
    order = [verdicts.VERDICTS.index(v) for v in groups]
    assert order == sorted(order)  # in the order the report explains them


def test_shown_run_is_named_where_its_figures_are(html, inputs):
    shown = pd.read_json(inputs["tables"]["summary"], typ="series")["best"]["run_id"]
    assert f"Confusion matrix of {shown}" in html
    assert f"Per-class test accuracy of {shown}." in html
    results = _section(html, '<h2 id="results">', '<h2 id="conclusions">')
    for opt in ("adam", "sgd", "rmsprop", "adamax"):
        assert f"Run {opt}-final-s0:" in results or f"Run {opt}-final-s0 " in results, opt
    assert results.count("The figure shows seed 0, the first") == 4


def test_provenance_and_config(html):
    assert "0123abc" in html and "9.27.1" in html
    assert "validation_size: 5000" in html


def test_missing_claims_table_is_an_error(inputs, tmp_path):
    tables = {k: v for k, v in inputs["tables"].items() if k != "claims"}
    with pytest.raises(CnnoptError, match="claims"):
        _render(inputs, tmp_path / "r.html", tables=tables)
    assert not (tmp_path / "r.html").exists()


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
    """A baseline and one final run only: no Table 1 rows, no twins; every stage still works."""
    dirs = fakeruns.make_runs(tmp_path / "runs", only={"adam-baseline-s0", "adam-final-s0"})
    assert [d.name for d in dirs] == ["adam-baseline-s0", "adam-final-s0"]
    tables = _aggregate(dirs, tmp_path / "tables")
    claims = pd.read_csv(tables["claims"])
    assert list(claims["id"]) == [c["id"] for c in verdicts.load_claims()]
    assert verdicts.UNTESTED in set(claims["verdict"])
    named = {n: tmp_path / "figures" / f"{n}.png" for n in figs.FIGURES}
    written = figs.make_all(dirs, tables["table1"], tables["summary"], named,
                            {"adam": tmp_path / "figures" / "optimizer_adam.png"})
    manifest = fakeruns.make_manifest(tmp_path / "manifest.json")
    out = report.render(TEMPLATE, tables, written, dirs, manifest, {}, tmp_path / "r.html", PROVENANCE)
    html = out.read_text(encoding="utf-8")
    assert "No twins were configured" in html
    assert html.count('<tr id="claim-') == len(claims)
    assert html.count("data:image/png;base64,") == len(written) == 6
