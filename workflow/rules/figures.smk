# Figures: the paper's Figures 1-4 per optimizer and the comparisons across runs.

FIGURES = {name: f"results/figures/{name}.png" for name in FIGURE_NAMES}
OPTIMIZER_FIGURES = {
    opt: f"results/figures/{optimizer_figure_name(opt)}.png" for opt in OPTIMIZERS_WITH_FINAL
}


rule figures:
    input:
        unpack(study_inputs),
        table1=rules.aggregate.output.table1,
        summary=rules.aggregate.output.summary,
    output:
        **{
            name: report(
                path,
                caption=f"../../report/captions/{name}.rst",
                category=REPORT_CATEGORIES["figures"],
                subcategory="Comparisons",
                labels={"figure": name.replace("_", " ")},
            )
            for name, path in FIGURES.items()
        },
        **{
            optimizer_figure_name(opt): report(
                path,
                caption="../../report/captions/optimizer.rst",
                category=REPORT_CATEGORIES["figures"],
                subcategory="Per optimizer",
                labels={"optimizer": opt},
            )
            for opt, path in OPTIMIZER_FIGURES.items()
        },
    log:
        "results/logs/figures.log",
    benchmark:
        "results/benchmarks/figures.tsv"
    retries: 0  # not transient: a retry would fail the same way
    localrule: True
    conda:
        "../../envs/cnnopt.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        code=code_version("figures.py"),
    script:
        "../scripts/figures.py"
