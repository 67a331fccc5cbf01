# Evaluate: the last and the best-validation model's test accuracy and loss, per-class accuracy, confusion matrix, inference speed.


rule evaluate:
    input:
        model=f"{RUN_DIR}/model.keras",
        best_model=f"{RUN_DIR}/model_best.keras",
        metrics=f"{RUN_DIR}/metrics.json",  # the best model's epoch
        history=f"{RUN_DIR}/history.csv",  # with run.json: what MLflow tracking logs
        trained_spec=f"{RUN_DIR}/run.json",
        arrays=DATA_ARRAYS,
    output:
        f"{RUN_DIR}/evaluation.json",
    log:
        "results/logs/evaluate/{run}.log",
    benchmark:
        "results/benchmarks/evaluate/{run}.tsv"
    wildcard_constraints:
        run=one_of(EVALUATED),
    conda:
        "../../envs/cnnopt.yaml"
    threads: config["threads"]
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        spec=spec_json,
        tracking=tracking,
        code=code_version("evaluate.py"),
    script:
        "../scripts/evaluate.py"
