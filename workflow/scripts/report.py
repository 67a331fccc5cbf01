"""Render the self-contained HTML report.

snakemake.input.tables    every table: aggregate's (summary.json too), calibrate's and tuning's
                          (each matched by its file stem)
snakemake.input.figures   list of PNGs; each is keyed by its stem (e.g. "final_accuracy",
                          "optimizer_adam")
snakemake.input.metrics   list of results/runs/{run_id}/metrics.json (run folder = parent; its
                          run.json, history.csv and evaluation.json are read too)
snakemake.input.manifest  results/data/manifest.json
snakemake.params.config   the whole validated config (shown as YAML in the appendix)
snakemake.output[0]       results/report/report.html
snakemake.log[0]          the rule log
"""

from pathlib import Path

import snakemake as _smk

from cnnopt.common import logs
from cnnopt.common.provenance import collect_provenance
from cnnopt.report.html import TEMPLATE, render

logs.setup(snakemake.log[0])
tables = {Path(p).stem: p for p in snakemake.input.tables}
render(
    template_path=TEMPLATE,
    tables=tables,
    figures=list(snakemake.input.figures),
    run_dirs=[Path(p).parent for p in snakemake.input.metrics],
    manifest_json=snakemake.input.manifest,
    config=dict(snakemake.params.config),
    out_html=snakemake.output[0],
    provenance=collect_provenance(snakemake_version=getattr(_smk, "__version__", None)),
)
