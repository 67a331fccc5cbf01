# Report: one self-contained HTML file that mirrors the paper, with its numbers beside ours.

REPORT_HTML = "results/report/report.html"


rule report:
    input:
        unpack(study_inputs),
        tables=[
            *(rules.aggregate.output if GRID else []),  # none in a study of searches alone
            *(rules.calibrate.output if GRID else []),
            *(rules.calibrate_sequential.output if SEQUENTIAL.on else []),
            *(rules.tuning_tables.output if SEARCHES else []),
        ],
        figures=[
            *(rules.figures.output if GRID else []),
            *(rules.tuning_figures.output if SEARCHES else []),
        ],
        manifest=rules.prepare_data.output.manifest,
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
