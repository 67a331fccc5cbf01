# Report: one self-contained HTML file that mirrors the paper, with its numbers beside ours.

REPORT_HTML = "results/report/report.html"


rule report:
    input:
        tables=list(TABLES.values()) + [CALIBRATION] + TUNING_REPORT_TABLES,
        summary=SUMMARY,
        figures=list(FIGURES.values())
        + list(OPTIMIZER_FIGURES.values())
        + list(TUNING_FIGURES.values()),
        metrics=run_files("metrics.json"),
        runs=run_files("run.json"),
        histories=run_files("history.csv"),
        evaluations=run_files("evaluation.json"),
        manifest=DATA_MANIFEST,
        template="report/template.html.j2",
    output:
        report(
            REPORT_HTML,
            caption="../../report/captions/report.rst",
            category=REPORT_CATEGORIES["report"],
            labels={"file": "the report, self-contained"},
        ),
    log:
        "results/logs/report.log",
    benchmark:
        "results/benchmarks/report.tsv"
    retries: 0  # not transient: a retry would fail the same way
    localrule: True
    conda:
        "../../envs/cnnopt.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        config=config,
        code=code_version("report.py"),
    script:
        "../scripts/report.py"
