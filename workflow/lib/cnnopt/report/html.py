"""The HTML report: one self-contained page whose sections mirror the paper.

``build_context`` reads the aggregate tables, the run folders (``runs.read_runs``), the data
manifest and the configuration, and gathers the template's values: table rows
(``report_tables``, numbers left as numbers) and sentences (``report_text``). ``render``
fills the Jinja2 template with them (autoescape on, strict undefined, the cell formats of
``formatting.FILTERS``), embeds every figure as a base64 data URI and writes the page
atomically. Provenance comes from ``provenance.collect_provenance``.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping
from pathlib import Path

import jinja2
import pandas as pd
import yaml

from cnnopt.common import files
from cnnopt.common.errors import CnnoptError
from cnnopt.common.paper import PAPER_AUTHORS, PAPER_TITLE
from cnnopt.common.registry import optimizer_label
from cnnopt.common.runs import Runs, optimizer_order, read_runs, shown_run
from cnnopt.figures.names import FIGURES, PROFILE_FIGURE, figure_search, optimizer_figure_name
from cnnopt.judge import decide
from cnnopt.judge.rules import Rules
from cnnopt.report import future as report_future
from cnnopt.report import tables as report_tables
from cnnopt.report import text as report_text
from cnnopt.report.formatting import FILTERS

log = logging.getLogger(__name__)

#: The aggregate outputs ``render`` needs in its ``tables`` mapping.
TABLES = ("claims", "runs", "table1", "ablation", "summary")


# ---------------------------------------------------------------- inputs
def _read_csv(path, what) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise CnnoptError(f"missing {what} table: {path}")
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _read_json(path, what):
    path = Path(path)
    if not path.is_file():
        raise CnnoptError(f"missing {what}: {path}")
    return files.read_json(path)


def figure_uri(path) -> str:
    path = Path(path)
    if not path.is_file():
        raise CnnoptError(f"missing figure: {path}")
    data = path.read_bytes()
    if not data.startswith(b"\x89PNG"):
        raise CnnoptError(f"figure {path} is not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure_map(figures) -> dict[str, Path]:
    if isinstance(figures, Mapping):
        return {str(k): Path(v) for k, v in figures.items()}
    return {Path(p).stem: Path(p) for p in figures}


# ---------------------------------------------------------------- sections
def _optimizer_sections(runs: Runs, table1: pd.DataFrame, figs: dict[str, Path]) -> list[dict]:
    """Results per optimizer: its Table 1 row in words and the figure of its shown run."""
    t1 = {r["optimizer"]: r for r in report_tables.records(table1)} if len(table1) else {}
    out = []
    for opt in optimizer_order(runs.table["optimizer"]):
        shown = shown_run(runs.table, opt)
        if shown is None:
            continue
        run = runs[shown]
        key = optimizer_figure_name(opt)
        out.append({"label": optimizer_label(opt),
                    "text": report_text.optimizer_text(opt, t1.get(opt), run.get("seed", 0)),
                    "figure": figure_uri(figs[key]) if key in figs else None,
                    "caption": report_text.curve_caption(run)})
    return out


def _comparison(runs: Runs, table1: pd.DataFrame, figs: dict[str, Path], best) -> list[dict]:
    caps = report_text.comparison_captions(runs, table1, best)
    return [{"key": key, "title": title, "uri": figure_uri(figs[key]), "caption": caps[key]}
            for key, title in FIGURES.items() if key in figs]


def build_context(runs_csv, table1_csv, ablation_csv, summary_json, figures, run_dirs,
                  manifest_json, config: dict, provenance: dict, claims_csv=None,
                  tuning: Mapping | None = None, strata_csv=None, calibration_csv=None,
                  sequential_csvs: Mapping | None = None) -> dict:
    """Every value the template shows, computed from the workflow's outputs.

    ``tuning`` maps the tuning tables (``report_future.TABLES``) to their CSV files; without
    it the report has no "Future work, answered" section. A study of searches alone (an empty
    grid) has no aggregate tables: ``runs_csv`` is None, ``run_dirs`` are the tuned runs, and
    the report keeps its methodology, the future work and the appendix. ``sequential_csvs`` maps
    "sequential_calibration" and "sequential_power" to the sequential design's simulated
    tables (section 2.4, with summary.json's ``sequential``).
    """
    config = config or {}
    study = runs_csv is not None
    if not study and not tuning:
        raise CnnoptError("report needs the aggregate tables or, for a study of searches alone, "
                          "the tuning tables")
    runs = read_runs(run_dirs)
    runs_df = _read_csv(runs_csv, "runs") if study else runs.table
    claims = (_read_csv(claims_csv, "claims") if claims_csv is not None
              else pd.DataFrame(columns=decide.COLUMNS))
    table1 = _read_csv(table1_csv, "Table 1") if study else pd.DataFrame()
    abl = _read_csv(ablation_csv, "ablation") if study else pd.DataFrame()
    summ = _read_json(summary_json, "summary") if study else {}
    manifest = _read_json(manifest_json, "data manifest")
    figs = _figure_map(figures)
    data = report_tables.data_section(manifest)
    best_id = (summ.get("best") or {}).get("run_id")
    best = runs[best_id] if best_id in runs else None
    return {
        "title": "Reproduction report: " + PAPER_TITLE,
        "paper_title": PAPER_TITLE, "paper_authors": PAPER_AUTHORS,
        "study": study,
        "summary_sentences": (report_text.summary_sentences(summ, data, claims) if study
                              else report_future.searches_only_summary(config, data)),
        "scale": summ.get("scale", config.get("scale", "reduced")),
        "claims": report_tables.claim_rows(claims),
        "strata": report_tables.strata_rows(_read_csv(strata_csv, "strata")
                                            if strata_csv is not None else pd.DataFrame()),
        "calibration": report_tables.calibration_section(
            _read_csv(calibration_csv, "calibration") if calibration_csv is not None else None),
        "sequential": report_tables.sequential_section(
            summ.get("sequential"),
            *(_read_csv(sequential_csvs[k], k) if sequential_csvs and k in sequential_csvs else None
              for k in ("sequential_calibration", "sequential_power"))),
        "rules": Rules.of(config.get("verdicts")),
        # Table 1 stands beside the paper's only when the paper's claims are judged
        "paper_claims": not config.get("claims"),
        "deviations": report_text.deviation_rows(runs, config, data, study),
        "data": data,
        "models": report_tables.model_rows(runs),
        "optimizers": report_tables.optimizer_rows(runs),
        "schedules": report_tables.schedule_rows(runs),
        "baseline_text": report_text.baseline_text(summ) if study else "",
        "opt_sections": _optimizer_sections(runs, table1, figs) if study else [],
        "table1": report_tables.table1_rows(table1),
        "ablation": report_tables.ablation_rows(abl),
        "comparison": _comparison(runs, table1, figs, best) if study else [],
        "runs": report_tables.run_rows(runs_df),
        "best_run_id": best_id,
        "per_class": report_tables.per_class_rows(best),
        "conclusions": report_text.conclusions(summ, claims, data) if study else [],
        "future": report_future.future_section(
            {name: _read_csv(tuning[name], name) for name in report_future.TABLES},
            {key: figure_uri(path) for key, path in figs.items()
             if figure_search(key)}, config) if tuning else [],
        "future_profile": figure_uri(figs[PROFILE_FIGURE]) if tuning and PROFILE_FIGURE in figs else None,
        "config_yaml": yaml.safe_dump(json.loads(json.dumps(config, default=str)), sort_keys=False,
                                      allow_unicode=True, default_flow_style=False),
        "versions": report_tables.version_rows(runs),
        "total_seconds": summ.get("total_train_seconds"),
        "provenance": {"commit": provenance.get("commit") or "none (an installed copy of cnnopt)",
                       **{k: provenance.get(k) for k in ("version", "hostname", "platform",
                                                         "generated", "snakemake_version")}},
    }


def environment(template_dir) -> jinja2.Environment:
    """The report's Jinja environment: autoescape, strict undefined, the cell formats."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(template_dir)),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(FILTERS)
    return env


#: The report's Jinja2 template, shipped with the package.
TEMPLATE = Path(__file__).resolve().with_name("template.html.j2")


def render(template_path, tables: Mapping, figures, run_dirs, manifest_json, config: dict,
           out_html, provenance: dict) -> Path:
    """Write the self-contained HTML report to ``out_html``.

    ``tables`` maps "claims", "runs", "table1", "ablation" and "summary" to the aggregate
    outputs (and, when present, "strata" and "calibration": the arms' spread and the
    simulated operating characteristics), and "tuning_candidates", "tuned" and "tuned_claims" to the tuning tables when
    the config has searches; ``figures`` maps figure names (e.g. "final_accuracy", "optimizer_adam") to PNG
    paths, or is a list of PNG paths named by their stem; ``provenance`` is what
    ``provenance.collect_provenance`` returns. Nothing is written if any step fails.
    """
    template_path = Path(template_path)
    if not template_path.is_file():
        raise CnnoptError(f"missing report template: {template_path}")
    missing = [k for k in TABLES if k not in tables]
    searches_only = len(missing) == len(TABLES) and any(k in tables for k in report_future.TABLES)
    if missing and not searches_only:
        raise CnnoptError(f"report needs the aggregate table(s): {', '.join(missing)}")
    ctx = build_context(*(tables.get(k) for k in ("runs", "table1", "ablation", "summary")),
                        figures, run_dirs, manifest_json, config, provenance, tables.get("claims"),
                        tuning={k: tables[k] for k in report_future.TABLES if k in tables} or None,
                        strata_csv=tables.get("strata"), calibration_csv=tables.get("calibration"),
                        sequential_csvs={k: tables[k] for k in ("sequential_calibration",
                                                                "sequential_power") if k in tables})
    try:
        html = environment(template_path.parent).get_template(template_path.name).render(**ctx)
    except jinja2.TemplateError as exc:
        raise CnnoptError(f"cannot render report template {template_path}: {exc}") from exc
    files.write_text(out_html, html)
    log.info("wrote report %s (%d kB)", out_html, len(html) // 1024)
    return Path(out_html)
