# Train: one job per run {optimizer} x {variant} x {seed}, on a GPU where one is given.


rule train:
    input:
        arrays=DATA_ARRAYS,
    output:
        model=f"{RUN_DIR}/model.keras",
        history=f"{RUN_DIR}/history.csv",
        metrics=f"{RUN_DIR}/metrics.json",
        spec=f"{RUN_DIR}/run.json",
    params:
        spec=run_spec,
        checkpoint=lambda w: f"results/checkpoints/{w.optimizer}-{w.variant}-s{w.seed}",
        code=code_version("train", "models", "optimizers", "runtime", "splits", "data"),
    conda:
        "../../envs/cnnopt.yaml"
    log:
        "results/logs/train/{optimizer}-{variant}-s{seed}.log",
    benchmark:
        "results/benchmarks/train/{optimizer}-{variant}-s{seed}.tsv"
    threads: config["threads"]
    resources:
        # One name, both meanings: locally `--resources gpu=N` caps concurrent trainings and
        # cnnopt.gpus gives each its own GPU; under the SLURM plugin it is `sbatch --gpus`
        # (gpu_model, cpus_per_gpu, slurm_partition: see workflow/profiles/README.md).
        gpu=config["gpus_per_training"],
        mem_mb=6000,
        runtime=240,
    script:
        "../scripts/train.py"
