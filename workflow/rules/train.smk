# Train: one job per distinct run {optimizer}-{variant}-s{seed}, on a GPU where one is given;
# a run whose spec equals an earlier one's is copied from it (share_run), not trained again.
# Each also writes its TensorBoard events to results/tensorboard/<run id>/ (not outputs).

TRAIN_OUTPUTS = dict(
    model=f"{RUN_DIR}/model.keras",
    best_model=f"{RUN_DIR}/model_best.keras",  # the epoch of the best validation accuracy
    history=f"{RUN_DIR}/history.csv",
    metrics=f"{RUN_DIR}/metrics.json",
    spec=f"{RUN_DIR}/run.json",
)


rule train:
    input:
        arrays=DATA_ARRAYS,
        choice=tuned_choice,  # a tuned run's selection file (its learning rate); else none
    output:
        **TRAIN_OUTPUTS,
    log:
        "results/logs/train/{run}.log",
    benchmark:
        "results/benchmarks/train/{run}.tsv"
    wildcard_constraints:
        run=one_of(TRAINED),
    conda:
        "../../envs/cnnopt.yaml"
    threads: config["threads"]
    resources:
        # One name, both meanings: locally `--resources gpu=N` caps concurrent trainings and
        # cnnopt.common.gpus gives each its own GPU; under the SLURM plugin it is `sbatch --gpus`
        # (gpu_model, cpus_per_gpu, slurm_partition: see workflow/profiles/README.md).
        gpu=config["gpus_per_training"],
        mem_mb=6000,
        runtime=240,
        attempt=lambda wildcards, attempt: attempt,  # 2, 3, ...: a retry (its log says so)
    params:
        spec=spec_json,
        resume_dir="results/checkpoints/{run}",  # per-epoch state a retry resumes from
        attempts="results/logs/attempts/train/{run}.log",  # every attempt's lines
        tensorboard="results/tensorboard/{run}",  # event files, rewritten at each start
        tracking=tracking,
        code=code_version("train.py"),
    script:
        "../scripts/train.py"


rule share_run:
    input:
        **{
            name: lambda w, path=path: path.format(run=SHARED[w.run])
            for name, path in TRAIN_OUTPUTS.items()
        },
    output:
        **TRAIN_OUTPUTS,
    log:
        "results/logs/share_run/{run}.log",
    benchmark:
        "results/benchmarks/share_run/{run}.tsv"
    wildcard_constraints:
        run=one_of(SHARED),
    localrule: True
    conda:
        "../../envs/cnnopt.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        spec=spec_json,
        tensorboard="results/tensorboard/{run}",  # written anew from the copied history
        code=code_version("share_run.py"),
    script:
        "../scripts/share_run.py"
