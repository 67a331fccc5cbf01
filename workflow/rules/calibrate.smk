# Calibrate: how far to trust the verdicts. The decision rules of the claims table, run on
# simulated studies of this study's own claims and arms, in the model's own case and in the
# cases that break it (cnnopt.judge.calibration).

CALIBRATION = "results/tables/calibration.csv"


rule calibrate:
    input:
        runs=rules.aggregate.output.runs,  # the arms and their roles
        claims=CLAIMS_FILE,  # the user's own claims file (config claims), if any
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
    threads: 2  # simulated studies in two processes
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        claims=config["claims"],  # None: the paper's claims
        verdicts=config["verdicts"],  # the decision rules, and the settings simulated
        code=code_version("calibrate.py"),
    script:
        "../scripts/calibrate.py"
