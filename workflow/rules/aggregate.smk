# Aggregate: every run in one table; Table 1 beside the paper; the ablation; the summary.

TABLES = {
    name: f"results/tables/{name}.csv" for name in ("runs", "table1", "ablation")
}
SUMMARY = "results/tables/summary.json"


rule aggregate:
    input:
        metrics=run_files("metrics.json"),
        evaluations=run_files("evaluation.json"),
    output:
        runs=report(TABLES["runs"], caption="../../report/captions/runs.rst", category="Tables"),
        table1=report(
            TABLES["table1"], caption="../../report/captions/table1.rst", category="Tables"
        ),
        ablation=report(
            TABLES["ablation"], caption="../../report/captions/ablation.rst", category="Tables"
        ),
        summary=SUMMARY,
    params:
        code=code_version("aggregate", "paper"),
    conda:
        "../../envs/cnnopt.yaml"
    log:
        "results/logs/aggregate.log",
    localrule: True
    script:
        "../scripts/aggregate.py"
