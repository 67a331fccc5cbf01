# The sequential design (config verdicts.sequential; cnnopt.judge.sequential): at each look the
# claims are judged at that look's level; the claims that the seed spread alone leaves open get
# the next look's seeds for the arms they compare. Each look is a checkpoint: its plan names
# the runs the next look judges, so only those train. Then the design's error rates and power,
# simulated against fixed seeds (cnnopt.judge.calibration.simulate_sequential).

SEQUENTIAL_TABLES = {
    name: f"results/tables/{name}.csv" for name in ("sequential_calibration", "sequential_power")
}


checkpoint look:
    input:
        unpack(look_inputs),
        claims=CLAIMS_FILE,  # the user's own claims file (config claims), if any
    output:
        plan=LOOK_PLAN,
        claims=LOOK_CLAIMS,
    log:
        "results/logs/look/look{k}.log",
    benchmark:
        "results/benchmarks/look/look{k}.tsv"
    wildcard_constraints:
        k="[1-9][0-9]*",
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
        verdicts=config["verdicts"],  # the decision rules and the looks
        scale=config["scale"],
        code=code_version("look.py"),
    script:
        "../scripts/look.py"


rule calibrate_sequential:
    input:
        runs=rules.aggregate.output.runs,  # the arms and their roles
        claims=CLAIMS_FILE,  # the user's own claims file (config claims), if any
    output:
        errors=report(
            SEQUENTIAL_TABLES["sequential_calibration"],
            caption="../../report/captions/sequential_calibration.rst",
            category=REPORT_CATEGORIES["claims"],
            labels={"table": "error rates of the sequential design"},
        ),
        power=report(
            SEQUENTIAL_TABLES["sequential_power"],
            caption="../../report/captions/sequential_power.rst",
            category=REPORT_CATEGORIES["claims"],
            labels={"table": "power of the sequential design per training"},
        ),
    log:
        "results/logs/calibrate_sequential.log",
    benchmark:
        "results/benchmarks/calibrate_sequential.tsv"
    retries: 0  # not transient: a retry would fail the same way
    localrule: True
    conda:
        "../../envs/cnnopt.yaml"
    threads: 2  # simulated studies in two processes
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        claims=config["claims"],  # None: the paper's claims
        verdicts=config["verdicts"],  # the decision rules, the looks and the settings simulated
        code=code_version("calibrate_sequential.py"),
    script:
        "../scripts/calibrate_sequential.py"
