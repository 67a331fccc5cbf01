# Train: one job per distinct run {optimizer}-{variant}-s{seed}, on a GPU where one is given;
# a run whose spec equals an earlier one's is copied from it (share_run), not trained again.
# Each also writes its TensorBoard events to results/tensorboard/<run id>/ (not outputs).
# A learning-rate search's rung (config tuning, halving) continues the previous rung's state,
# and keeps its own for the next rung (train_keep); a tuned run on the candidates' seed is the
# winner's search run, copied (adopt).


rule train:
    input:
        arrays=DATA_ARRAYS,
        choice=tuned_choice,  # a tuned run's selection file (its learning rate); else none
        previous=continued_state,  # a search rung's run: the previous rung's state; else none
    output:
        **TRAIN_OUTPUTS,
    log:
        "results/logs/train/{run}.log",
    benchmark:
        "results/benchmarks/train/{run}.tsv"
    wildcard_constraints:
        run=one_of(TRAINED_PLAIN),
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


use rule train as train_keep with:
    output:
        **TRAIN_OUTPUTS,
        state=directory(RUN_STATE),  # the final state the next rung continues from
    wildcard_constraints:
        run=one_of(KEEP_STATE),


rule adopt:
    input:
        unpack(adopted_inputs),
    output:
        **TRAIN_OUTPUTS,
    log:
        "results/logs/adopt/{run}.log",
    benchmark:
        "results/benchmarks/adopt/{run}.tsv"
    wildcard_constraints:
        run=one_of(ADOPTED),
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
