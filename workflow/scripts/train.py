"""Train one run (rule train): thin wrapper around cnnopt.train.loop.train."""

import json
from pathlib import Path

from cnnopt.common import gpus, logs, runtime
from cnnopt.tuning import choice as tuning

# a retry (after a cancelled, preempted or timed-out attempt) shows every attempt's lines
attempt = int(snakemake.resources.get("attempt", 1))
log = logs.setup(snakemake.log[0], attempts=snakemake.params.attempts, retry=attempt > 1)
log.info("attempt %d of this job", attempt)

# Take a free GPU (or SLURM's) before the framework starts: it only sees that one. configure
# logs the device in one line and keeps the frameworks' harmless stderr lines (with no GPU,
# TensorFlow's "failed call to cuInit") out of the log; their other stderr lines go into it.
with gpus.claim(int(snakemake.resources.get("gpu", 0) or 0)):
    runtime.configure(snakemake.threads)

    from cnnopt.train.loop import train  # imports Keras: after the thread pools are set

    spec = json.loads(snakemake.params.spec)
    if snakemake.input.get("choice"):  # a tuned run: the rate its search chose
        spec = tuning.apply_choice(spec, snakemake.input.choice)
    train(
        spec,
        Path(snakemake.input.arrays),
        {name: Path(path) for name, path in snakemake.output.items() if name != "state"},
        resume_dir=Path(snakemake.params.resume_dir),
        start_from=Path(snakemake.input.previous) if snakemake.input.get("previous") else None,
        keep_state=Path(snakemake.output.state) if snakemake.output.get("state") else None,
        retry=attempt > 1,
        tensorboard=Path(snakemake.params.tensorboard),
        tracking=snakemake.params.tracking,
    )
