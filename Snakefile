# The workflow's Snakefile is workflow/Snakefile, the workflow catalog's place: a module read
# from a git source needs it there (README, "Use it in your own project"). This one lets
# `snakemake` run from the repository's top folder, with workflow/Snakefile's default target.

workflow.include("workflow/Snakefile", overwrite_default_target=True)
