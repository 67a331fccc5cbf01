# Aggregate: every run in one table; Table 1 beside the paper; the twins; the summary; and
# the verdict on each of the paper's claims (workflow/lib/cnnopt/judge/claims.yaml); the
# arms' spread per stratum.

TABLES = {
    name: f"results/tables/{name}.csv"
    for name in ("claims", "runs", "table1", "ablation", "strata")
}
SUMMARY = "results/tables/summary.json"


rule aggregate:
    input:
        unpack(study_inputs),  # the runs (with the sequential design: its looks' too)
        claims=CLAIMS_FILE,  # the user's own claims file (config claims), if any
    output:
        claims=report(
            TABLES["claims"],
            caption="../../report/captions/claims.rst",
            category=REPORT_CATEGORIES["claims"],
            labels={"table": "verdict on each claim"},
        ),
        runs=report(
            TABLES["runs"],
            caption="../../report/captions/runs.rst",
            category=REPORT_CATEGORIES["table1"],
            labels={"table": "every run"},
        ),
        table1=report(
            TABLES["table1"],
            caption="../../report/captions/table1.rst",
            category=REPORT_CATEGORIES["table1"],
            labels={"table": "Table 1 beside the paper"},
        ),
        ablation=report(
            TABLES["ablation"],
            caption="../../report/captions/ablation.rst",
            category=REPORT_CATEGORIES["table1"],
            labels={"table": "twins, one ingredient each"},
        ),
        strata=report(
            TABLES["strata"],
            caption="../../report/captions/strata.rst",
            category=REPORT_CATEGORIES["claims"],
            labels={"table": "seed spread per stratum"},
        ),
        summary=SUMMARY,
    log:
        "results/logs/aggregate.log",
    benchmark:
        "results/benchmarks/aggregate.tsv"
    retries: 0  # not transient: a retry would fail the same way
    localrule: True
    conda:
        "../../envs/cnnopt.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        claims=config["claims"],  # None: the paper's claims
        verdicts=config["verdicts"],  # the decision rules of the claims
        scale=config["scale"],
        threads=config["threads"],  # per training: the sequential design's CPU hours
        code=code_version("aggregate.py"),
    script:
        "../scripts/aggregate.py"
