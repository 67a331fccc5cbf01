# Evaluate: test accuracy and loss, per-class accuracy, confusion matrix, inference speed.


rule evaluate:
    input:
        model=f"{RUN_DIR}/model.keras",
        arrays=DATA_ARRAYS,
    output:
        f"{RUN_DIR}/evaluation.json",
    params:
        spec=run_spec,
        code=code_version("evaluate", "splits", "data"),
    conda:
        "../../envs/cnnopt.yaml"
    log:
        "results/logs/evaluate/{optimizer}-{variant}-s{seed}.log",
    benchmark:
        "results/benchmarks/evaluate/{optimizer}-{variant}-s{seed}.tsv"
    threads: config["threads"]
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../scripts/evaluate.py"
