# Calibrate: how far to trust the verdicts. The decision rules of the claims table, run on
# simulated studies at this study's seed count and observed spread (cnnopt.judge.calibration).

CALIBRATION = "results/tables/calibration.csv"


rule calibrate:
    input:
        strata=rules.aggregate.output.strata,
    output:
        report(
            CALIBRATION,
            caption="../../report/captions/calibration.rst",
            category=REPORT_CATEGORIES["claims"],
            labels={"table": "error rates of the decision rules"},
        ),
    log:
        "results/logs/calibrate.log",
    benchmark:
        "results/benchmarks/calibrate.tsv"
    retries: 0  # not transient: a retry would fail the same way
    localrule: True
    conda:
        "../../envs/cnnopt.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        verdicts=config["verdicts"],  # the decision rules of the claims
        seeds=len(config["seeds"]),
        code=code_version("calibrate.py"),
    script:
        "../scripts/calibrate.py"
