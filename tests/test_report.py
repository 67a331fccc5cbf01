"""Report: sections, the claims and deviations tables, Table 1 and the twins beside the
paper, embedded figures, escaping, atomic output; expectations read from the aggregate files."""

import re
import subprocess

import fakeruns
import pandas as pd
import pytest
import yaml
from conftest import ROOT
from markupsafe import escape

import cnnopt
from cnnopt.common import provenance
from cnnopt.common.errors import CnnoptError
from cnnopt.common.paper import PAPER_TABLE1
from cnnopt.figures import draw as figs
from cnnopt.judge import aggregate as agg
from cnnopt.judge import calibration, verdicts
from cnnopt.judge import claims as judge_claims
from cnnopt.judge.claims import load_claims
from cnnopt.judge.rules import Rules
from cnnopt.report import formatting
from cnnopt.report import html as report
from cnnopt.report import tables as report_tables

# one worker builds this file's module fixtures (the fake study, its tables and figures) once: with
# `--dist loadgroup` (the quick run in the README) its tests stay together
pytestmark = pytest.mark.xdist_group("report")

TEMPLATE = report.TEMPLATE
DEVIATIONS = ROOT / "workflow" / "lib" / "cnnopt" / "report" / "deviations.yaml"
HOSTILE_CLASSES = fakeruns.CLASS_NAMES[:9] + [fakeruns.HOSTILE]
PROVENANCE = {"commit": "0123abc", "hostname": "testhost", "platform": "Linux",
              "generated": "2024-01-01T00:00:00+00:00", "snakemake_version": "9.27.1"}
TABLES = ("claims", "runs", "table1", "ablation", "strata", "calibration")


def _aggregate(dirs, t, **kw) -> dict:
    agg.aggregate(dirs, t / "runs.csv", t / "table1.csv", t / "ablation.csv", t / "summary.json",
                  t / "claims.csv", t / "strata.csv", **kw)
    calibration.calibrate(load_claims(), pd.read_csv(t / "runs.csv"),
                          Rules.of({"calibration": {"studies": 10, "sds": [1.0], "seeds": [2]}}),
                          t / "calibration.csv")
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
                    '<h3 id="strata">2.2 The arms\' spread</h3>',
                    '<h3 id="calibration">2.3 How far to trust these verdicts</h3>',
                    "<h3>2.4 Deviations and assumptions</h3>",
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
    ids = [c["id"] for c in judge_claims.load_claims()]
    assert list(claims["id"]) == ids
    assert re.findall(r'<tr id="claim-([^"]+)">', section) == ids
    rows = re.split(r'(?=<tr id="claim-)', section)[1:]
    for row, c in zip(rows, claims.itertuples(), strict=True):
        css = c.verdict.replace(" ", "-")
        assert f'<span class="verdict {css}">{c.verdict_text}</span>' in row, c.id
        assert c.verdict_text.startswith(c.verdict)
        assert str(escape(c.claim)) in row, c.id
        assert str(escape(c.reason)) in row, c.id
    assert html.count('<tr id="claim-') == len(ids)
    # a verdict with a space gets a dash in its class
    row = report_tables.claim_rows(pd.DataFrame([{"id": "x", "kind": "value",
                                                  "verdict": "not reproduced"}]))[0]
    assert row["css"] == "not-reproduced"


def test_claims_table_numbers_match_claims_csv(html, claims):
    section = _section(html, '<table id="claims-table">', "</table>")
    rows = dict(zip(claims["id"], re.split(r'(?=<tr id="claim-)', section)[1:], strict=True))
    for c in claims.itertuples():
        cells = re.findall(r'<td class="n">([^<]*)</td>', rows[c.id])
        if c.kind == "value":
            assert cells[0] == formatting.fmt(c.paper), c.id
            assert cells[1] == formatting.pm(c.ours, c.std), c.id
            if pd.notna(c.ci_low):
                assert cells[3] == f"[{formatting.fmt(c.ci_low)}, {formatting.fmt(c.ci_high)}]", c.id
        elif pd.notna(c.ours):
            assert cells[1].startswith(formatting.signed(c.ours)), c.id
        assert cells[2] == str(int(c.n) if pd.notna(c.n) else 0), c.id


def test_deviations_table_is_filled_in(html):
    section = _section(html, '<table id="deviations">', "</table>")
    entries = yaml.safe_load(DEVIATIONS.read_text(encoding="utf-8"))
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", section, re.S)
    # a study without searches: every row but those about the searches
    assert [r[0] for r in rows] == [str(escape(d["topic"])) for d in entries
                                    if d.get("scope") != "searches"]
    for topic, _paper, ours in rows:
        assert ours and "{" not in ours, (topic, ours)  # every placeholder filled
    data = dict((r[0], r[2]) for r in rows)
    assert data["Data"].startswith(str(escape("image-folder archive cifar10-jpeg.tar.gz")))
    assert "5,000" in data["Validation protocol"]  # from the config's validation_size


def test_table1_rows_show_ours_and_paper(html, inputs):
    table = pd.read_csv(inputs["tables"]["table1"])
    section = _section(html, "Table 1: initial and final accuracy", "Twins: one ingredient")
    for row in table.itertuples():
        ours = formatting.pm(row.final, row.final_std)  # the best validation epoch's model
        last = formatting.pm(row.final_last, row.final_last_std)
        paper = f"{PAPER_TABLE1[row.optimizer]['final']:.2f}"
        pattern = (rf"<td>{row.label}</td>.*?{re.escape(ours)}</td><td class=\"n\">{re.escape(last)}"
                   rf"</td><td class=\"n\">{paper}</td>")
        assert re.search(pattern, section, re.S), row.optimizer
        assert f"{PAPER_TABLE1[row.optimizer]['initial']:.2f}" in section


def test_twins_table_shows_each_delta(html, inputs):
    abl = pd.read_csv(inputs["tables"]["ablation"])
    section = _section(html, "Twins: one ingredient at a time", "4.5 Comparison")
    rows = re.findall(r"<tr><td>(final_no_\w+)</td>(.*?)</tr>", section, re.S)
    assert len(rows) == len(abl) > 0
    for (variant, rest), r in zip(rows, abl.itertuples(), strict=True):
        assert variant == r.variant
        cells = re.findall(r'<td class="n">([^<]*)</td>', rest)
        assert cells[0] == formatting.pm(r.test_accuracy, r.test_accuracy_std)
        assert cells[1] == formatting.fmt(r.reference_accuracy)
        assert cells[2] == formatting.signed(r.delta)
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
    for words, group in (("at the paper's budget", claims[claims["scale"] == "paper"]),
                         ("below the paper's budget", claims[claims["scale"] != "paper"])):
        assert len(group), words  # the fake has both
        head = f"Of the paper's claims tested {words} ({len(group)}, section 2): "
        sentence = str(escape(head)) + summary.split(str(escape(head)), 1)[1].split("</p>")[0]
        for verdict, n in group["verdict"].value_counts().items():
            assert f"{n} {verdict}" in sentence, (words, verdict)


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
    prov = provenance.collect_provenance(tmp_path, "9.0")
    assert set(prov) == {"version", "commit", "hostname", "platform", "generated",
                         "snakemake_version"}
    assert prov["commit"] is None and prov["snakemake_version"] == "9.0"
    assert prov["version"] == cnnopt.__version__
    assert prov["hostname"] and prov["generated"]


def test_collect_provenance_names_the_commit_and_says_dirty(tmp_path):
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    try:
        subprocess.run([*git, "init", "-q"], check=True, capture_output=True)
        (tmp_path / "f.txt").write_text("a")
        subprocess.run([*git, "add", "f.txt"], check=True, capture_output=True)
        subprocess.run([*git, "commit", "-q", "-m", "x"], check=True, capture_output=True)
        head = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                              text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not usable here")
    assert provenance.collect_provenance(tmp_path)["commit"] == head
    (tmp_path / "f.txt").write_text("b")
    assert provenance.collect_provenance(tmp_path)["commit"] == head + provenance.DIRTY


def test_minimal_grid_end_to_end(tmp_path):
    """A baseline and one final run only: no Table 1 rows, no twins; every stage still works."""
    dirs = fakeruns.make_runs(tmp_path / "runs", only={"adam-baseline-s0", "adam-final-s0"})
    assert [d.name for d in dirs] == ["adam-baseline-s0", "adam-final-s0"]
    tables = _aggregate(dirs, tmp_path / "tables")
    claims = pd.read_csv(tables["claims"])
    assert list(claims["id"]) == [c["id"] for c in judge_claims.load_claims()]
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


def test_every_table_scrolls_inside_a_box(html):
    """A table wider than the page scrolls sideways in its own box instead of running off."""
    assert re.search(r"\.scroll \{[^}]*overflow-x: auto", html)
    tables = [m.start() for m in re.finditer(r"<table[ >]", html)]
    assert len(tables) > 10
    for start in tables:
        before = html[:start].rstrip()
        assert re.search(r'<div class="scroll( wide)?">$', before), html[start:start + 60]
    for heading in ("<h3>4.3 Table 1: initial and final accuracy</h3>", "<h3>4.6 All runs</h3>"):
        assert html.split(heading, 1)[1].lstrip().startswith('<div class="scroll wide">'), heading


def test_tables_list_every_run_in_the_runs_table_order(html, inputs):
    runs = pd.read_csv(inputs["tables"]["runs"])
    for start, end in (("<h3>4.6 All runs</h3>", "</table>"),
                       ("<h3>3.5 Regularization</h3>", "</table>"),
                       ("<h3>Hardware and training time per run</h3>", "</table>")):
        section = _section(html, start, end)
        assert re.findall(r"<tr><td>([^<]+)</td>", section) == [str(escape(r)) for r in runs["run_id"]], start


@pytest.mark.parametrize("call, text", [
    (lambda: formatting.fmt(85.125, 1), "85.1"),
    (lambda: formatting.fmt(None), "\u2014"),
    (lambda: formatting.fmt(float("nan")), "\u2014"),
    (lambda: formatting.signed(-1.5), "\u22121.50"),
    (lambda: formatting.signed(0.0), "+0.00"),
    (lambda: formatting.pm(85.123, 0.456), "85.12 \u00b1 0.46"),
    (lambda: formatting.pm(85.123, None), "85.12"),
    (lambda: formatting.pm(None, 1.0, missing="diverged"), "diverged"),
    (lambda: formatting.pm(-2.0, 0.5, sign=True), "\u22122.00 \u00b1 0.50"),
    (lambda: formatting.interval(1.0, 2.5, sign=True), "[+1.00, +2.50]"),
    (lambda: formatting.interval(None, 2.5), "\u2014"),
    (lambda: formatting.duration(7.25), "7.2 s"),
    (lambda: formatting.duration(245), "4 min 05 s"),
    (lambda: formatting.duration(7380), "2 h 03 min"),
    (lambda: formatting.count(551466), "551,466"),
    (lambda: formatting.general(8.59e-05, 3), "8.59e-05"),
    (lambda: formatting.general(0.001), "0.001"),
    (lambda: formatting.yesno(None), "\u2014"),
    (lambda: formatting.yesno(False), "no"),
])
def test_cell_formats(call, text):
    assert call() == text


def test_the_template_formats_cells_with_the_registered_filters(tmp_path):
    env = report.environment(tmp_path)
    assert set(formatting.FILTERS) <= set(env.filters)
    out = env.from_string("{{ a | pm(s) }}|{{ d | signed }}|{{ t | duration }}|{{ n | num(1) }}").render(
        a=70.0, s=1.25, d=-0.5, t=None, n=3)
    assert out == "70.00 \u00b1 1.25|\u22120.50|\u2014|3.0"


def test_the_arms_spread_and_the_calibration_are_shown(html, inputs):
    strata = pd.read_csv(inputs["tables"]["strata"])
    section = _section(html, '<table id="strata-table">', "</table>")
    for r in strata.itertuples():
        assert f"<td>{r.stratum}</td>" in section
        assert f"{formatting.fmt(r.prior_sd)} ({formatting.fmt(r.prior_df, 0)})" in section
        assert f"{formatting.fmt(r.own_sd_min)} / {formatting.fmt(r.own_sd_median)} / " \
            f"{formatting.fmt(r.own_sd_max)}" in section
    cal = _section(html, 'id="calibration"', '<h3>2.4')
    table = pd.read_csv(inputs["tables"]["calibration"])
    rates = calibration.false_rates(table)
    rows = _section(cal, '<table id="calibration-table">', "</table>")
    assert rows.count("<tr") - 1 == len(rates) == len(calibration.CASES)  # one sd, one seed count
    for r in rates.itertuples():
        assert str(escape(calibration.CASE_TEXT[r.case])) in rows
        assert f"<code>{r.worst_claim}</code> {formatting.percent(r.worst_claim_rate)}" in rows
    power = _section(cal, '<table id="power-table">', "</table>")
    assert power.count("<tr>") - 1 == len(calibration.power_table(table))
    assert "Simulated on this study" in cal


@pytest.mark.parametrize("model, words, not_words", [
    ({"architecture": "tutorial"}, ["TensorFlow tutorial CNN"], ["residual"]),
    ({"architecture": "blocks", "filters": [32, 64], "dense": [128], "dropout": 0.5},
     ["2 convolutional block(s)", "max-pooling", "dropout 0.5"], ["residual"]),
    ({"architecture": "resnet", "filters": [16, 32, 64], "depth": 20, "l2": 1e-4},
     ["ResNet-20", "3 residual block(s)", "global average pooling", "L2 penalty 0.0001"],
     ["convolutional block(s), each followed by 2\u00d72 max-pooling"]),
    ({"architecture": "fast", "filters": [64, 128], "convs_per_block": 2, "stem": 32},
     ["fast CNN", "stem of 32 filters", "2 block(s)", "global max pooling"], ["residual"]),
])
def test_every_architecture_is_described_as_it_is_built(model, words, not_words):
    from cnnopt.common.registry import ARCHITECTURES
    from cnnopt.report.text import describe_model

    assert model["architecture"] in ARCHITECTURES
    text = describe_model(model)
    assert all(w in text for w in words) and not any(w in text for w in not_words), text
