# Figures: the paper's Figures 1-4 per optimizer and the comparisons across runs.

FIGURES = {
    name: f"results/figures/{name}.png"
    for name in (
        "val_accuracy_vs_epoch",
        "val_accuracy_vs_seconds",
        "final_accuracy",
        "lr_schedules",
        "confusion_best",
    )
}
OPTIMIZER_FIGURES = {opt: f"results/figures/optimizer_{opt}.png" for opt in OPTIMIZERS_WITH_FINAL}


rule figures:
    input:
        metrics=run_files("metrics.json"),
        histories=run_files("history.csv"),
        evaluations=run_files("evaluation.json"),
        table1=TABLES["table1"],
        summary=SUMMARY,
    output:
        optimizer_figures=report(
            list(OPTIMIZER_FIGURES.values()),
            caption="../../report/captions/optimizer.rst",
            category="Figures",
            subcategory="Per optimizer",
        ),
        **{
            name: report(path, caption=f"../../report/captions/{name}.rst", category="Figures")
            for name, path in FIGURES.items()
        },
    params:
        code=code_version("figures", "aggregate"),
    conda:
        "../../envs/cnnopt.yaml"
    log:
        "results/logs/figures.log",
    localrule: True
    script:
        "../scripts/figures.py"
