# Reproduces "Optimizing Convolutional Neural Networks for Image Classification through
# Advanced Gradient Descent Techniques" on CIFAR-10, from the download to an HTML report.
#
#   snakemake --cores 2                                  # the paper's study (config/config.yaml)
#   snakemake --cores 2 --configfile config/smoke.yaml   # the same DAG, tiny
#   snakemake --cores 1 --resources gpu=1                # one GPU box
#
# Every stage is a rule module in workflow/rules/, a thin script in workflow/scripts/ and one
# function of the cnnopt library in workflow/lib/ (which never imports Snakemake).

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/tuning.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/calibrate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"


# Every product a user opens, not the report alone: Snakemake does not rebuild a deleted file
# whose consumers are up to date, so the tables and figures are targets in their own right.
rule all:
    default_target: True
    input:
        rules.report.output,
        rules.aggregate.output,
        rules.calibrate.output,
        rules.figures.output,
        [rules.tuning_tables.output, rules.tuning_figures.output] if SEARCHES else [],
