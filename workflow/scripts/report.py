"""Render the self-contained HTML report.

snakemake.input.tables    every table: aggregate's (summary.json too), calibrate's and tuning's
                          (each matched by its file stem)
snakemake.input.figures   list of PNGs; each is keyed by its stem (e.g. "final_accuracy",
                          "optimizer_adam")
snakemake.input.metrics   list of results/runs/{run_id}/metrics.json (run folder = parent; its
                          run.json, history.csv and evaluation.json are read too)
snakemake.input.manifest  results/data/manifest.json
snakemake.input.template  report/template.html.j2
snakemake.params.config   the whole validated config (shown as YAML in the appendix)
snakemake.output[0]       results/report/report.html
snakemake.log[0]          the rule log
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "lib"))  # noqa: F821

import snakemake as _smk  # noqa: E402

from cnnopt.common import logs  # noqa: E402
from cnnopt.common.provenance import collect_provenance  # noqa: E402
from cnnopt.report.html import render  # noqa: E402

logs.setup(snakemake.log[0])  # noqa: F821
tables = {Path(p).stem: p for p in snakemake.input.tables}  # noqa: F821
render(
    template_path=snakemake.input.template,  # noqa: F821
    tables=tables,
    figures=list(snakemake.input.figures),  # noqa: F821
    run_dirs=[Path(p).parent for p in snakemake.input.metrics],  # noqa: F821
    manifest_json=snakemake.input.manifest,  # noqa: F821
    config=dict(snakemake.params.config),  # noqa: F821
    out_html=snakemake.output[0],  # noqa: F821
    provenance=collect_provenance(
        Path(snakemake.scriptdir).parents[1],  # noqa: F821
        getattr(_smk, "__version__", None),
    ),
)
