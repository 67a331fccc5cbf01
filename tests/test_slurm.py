"""The smoke DAG on a real (single-node, throw-away) SLURM cluster through the slurm profile.

A cluster is started on this machine (tests/slurm_cluster.py) with two fake GPUs for the
``gpu`` GRES; Snakemake submits every job with ``snakemake-executor-plugin-slurm``. The test
checks that each training ran as its own SLURM job, asked for one GPU (``sbatch --gpus=1``,
accepted by SLURM) and saw the GPU SLURM gave it. Skipped where SLURM/MUNGE are not
installed (CI installs them: .ci/run).
"""

from __future__ import annotations

import re
import subprocess
import time

import pandas as pd
import pytest
import slurm_cluster
from datasets import make_canonical_python_archive, serve_directory
from workflow_helpers import (
    ROOT,
    SNAKEMAKE,
    assert_same_weights,
    config_args,
    copy_workflow,
    run_ids,
    snakemake,
)

pytestmark = [pytest.mark.slurm, pytest.mark.dag, pytest.mark.slow]

SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")
SMALL_GRID = str(ROOT / "tests" / "configs" / "small_grid.yaml")  # 5 runs, every rule
RUNS = run_ids("config/smoke.yaml", SMALL_GRID)


@pytest.fixture(scope="module")
def cluster():
    reason = slurm_cluster.why_unavailable()
    if reason:
        pytest.skip(reason)
    c = slurm_cluster.SlurmCluster(gpus=2, cpus=4)
    try:
        c.start()
        yield c
    finally:
        c.cleanup()


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    """The smoke DAG through --executor slurm (the profile): its output and its job ids."""
    served = tmp_path_factory.mktemp("served")
    md5 = make_canonical_python_archive(served / "cifar-10-python.tar.gz",
                                        n_train_per_class=30, n_test_per_class=10)
    wf = copy_workflow(tmp_path_factory.mktemp("wf"))
    env = dict(cluster.env, TF_CPP_MIN_LOG_LEVEL="2")
    for var in ("CUDA_VISIBLE_DEVICES", "CNNOPT_GPU_DEVICES"):
        env.pop(var, None)
    started = time.monotonic()
    with serve_directory(served) as url:
        cmd = [str(SNAKEMAKE), "--profile", "workflow/profiles/slurm",
               "--slurm-no-account", "--slurm-status-command", "squeue",
               "--slurm-init-seconds-before-status-checks", "2",
               "--slurm-keep-successful-logs", "--latency-wait", "10", "--local-cores", "1",
               "--configfile", "config/smoke.yaml", SMALL_GRID, *config_args(
                   data_source=f"{url}/cifar-10-python.tar.gz", data_checksum=f"md5:{md5}",
                   validation_size=50, max_train_images=0, max_test_images=0, threads=1)]
        try:
            proc = subprocess.run(cmd, cwd=wf, env=env, text=True, timeout=600,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except subprocess.TimeoutExpired as err:
            pytest.fail(f"snakemake --executor slurm timed out:\n{(err.output or '')[-3000:]}"
                        f"\n{cluster.logs()}")
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-5000:] + "\n" + cluster.logs()
    jobs = {}  # SLURM job id -> (rule, slurm log path)
    for _, slurm_id, log in SUBMITTED.findall(proc.stdout):
        rule = re.search(r"slurm_logs/rule_([a-z_]+)/", log).group(1)
        jobs[slurm_id] = (rule, log)
    print(f"smoke DAG on SLURM in {seconds:.0f} s; SLURM jobs:",
          {i: rule for i, (rule, _) in sorted(jobs.items(), key=lambda kv: int(kv[0]))})
    return wf, proc.stdout, jobs


def scontrol_job(cluster, job_id: str) -> str:
    return cluster.run("scontrol", "-o", "show", "job", job_id)


def test_every_training_ran_as_its_own_slurm_job(slurm_run):
    wf, out, jobs = slurm_run
    train_ids = {}
    for rid in RUNS:
        log = (wf / f"results/logs/train/{rid}.log").read_text()
        found = re.search(r"SLURM job (\d+): CUDA_VISIBLE_DEVICES=(\d+) given by SLURM", log)
        assert found, f"{rid}: no SLURM job in its log:\n{log[-1500:]}"
        job_id = found.group(1)
        assert jobs.get(job_id, ("?",))[0] == "train", (rid, job_id, jobs)
        assert log.count("epoch ") >= 2
        train_ids[rid] = job_id
    assert len(set(train_ids.values())) == len(RUNS)  # one SLURM job per training
    print("SLURM job id per training:", dict(sorted(train_ids.items())))
    assert sorted(rule for rule, _ in jobs.values()).count("train") == len(RUNS)
    submitted = {rule for rule, _ in jobs.values()}
    assert {"prepare_data", "evaluate"} <= submitted
    # downloads, tables, figures and the report run on the submitting host
    assert not submitted & {"download_data", "aggregate", "figures", "report"}
    assert (wf / "results/report/report.html").stat().st_size > 0


def test_trainings_asked_for_one_gpu_each_and_slurm_granted_it(slurm_run, cluster):
    _, _, jobs = slurm_run
    for job_id, (rule, _log) in jobs.items():
        info = scontrol_job(cluster, job_id)
        assert "JobState=COMPLETED" in info, info
        if rule == "train":
            assert re.search(r"TresPerJob=\S*gres:gpu:1\b", info), info  # sbatch --gpus=1
            assert "TimeLimit=04:00:00" in info, info  # runtime=240 from the profile
        else:
            assert "gres/gpu" not in info, info  # CPU jobs ask for no GPU


def test_slurm_gave_each_training_one_gpu_and_used_both(slurm_run):
    wf, _, _ = slurm_run
    given = {}
    for rid in RUNS:
        log = (wf / f"results/logs/train/{rid}.log").read_text()
        given[rid] = re.search(r"CUDA_VISIBLE_DEVICES=(\S+) given by SLURM", log).group(1)
    assert set(given.values()) == {"0", "1"}, given  # one device each, from the gres/gpu pool


def test_training_slurm_logs_are_the_job_steps(slurm_run):
    _, _, jobs = slurm_run
    for job_id, (rule, log) in jobs.items():
        if rule == "train":
            assert log.endswith(f"/{job_id}.log")
            text = open(log).read()
            assert "rule train:" in text and "Finished jobid" in text, text[-2000:]


#: snakemake's options for the throw-away cluster, besides the slurm profile
CLUSTER_OPTIONS = ["--profile", "workflow/profiles/slurm", "--slurm-no-account",
                   "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks",
                   "2", "--latency-wait", "10", "--local-cores", "1"]


def _env(cluster):
    env = dict(cluster.env, TF_CPP_MIN_LOG_LEVEL="2")
    for var in ("CUDA_VISIBLE_DEVICES", "CNNOPT_GPU_DEVICES"):
        env.pop(var, None)
    return env


def test_a_cancelled_training_is_resubmitted_and_ends_like_an_uninterrupted_twin(cluster, tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    md5 = make_canonical_python_archive(archive, n_train_per_class=100, n_test_per_class=10)
    target = "results/runs/adam-initial-s0/metrics.json"
    args = [target, "--configfile", "config/smoke.yaml", *config_args(
        data_source=archive, data_checksum=f"md5:{md5}", validation_size=100,
        max_train_images=0, max_test_images=0, threads=1, deterministic="true",
        variants="{initial: {epochs: 5}}")]
    twin = copy_workflow(tmp_path / "twin")
    local = snakemake(twin, "--cores", "1", *args)  # the same training, never interrupted
    assert local.returncode == 0, local.stdout[-3000:]

    wf = copy_workflow(tmp_path / "wf")
    proc = subprocess.Popen([str(SNAKEMAKE), *CLUSTER_OPTIONS, *args], cwd=wf, env=_env(cluster),
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log = wf / "results/logs/train/adam-initial-s0.log"
    deadline = time.monotonic() + 300
    while not (log.exists() and "epoch 2/5" in log.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline, "training ended or never started"
        time.sleep(0.2)
    running = cluster.run("squeue", "-h", "-t", "R", "-o", "%i").split()
    assert len(running) == 1, running  # the training (prepare_data has finished)
    cluster.run("scancel", running[0])
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-5000:] + "\n" + cluster.logs()
    assert "CANCELLED" in out, out[-3000:]  # snakemake saw the cancellation, then retried
    text = log.read_text()
    assert "attempt 1 of this job" in text and "attempt 2 of this job" in text, text[-3000:]
    assert "resuming from the checkpoint" in text, text[-3000:]
    ours, theirs = (pd.read_csv(d / "results/runs/adam-initial-s0/history.csv") for d in (wf, twin))
    compared = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]
    pd.testing.assert_frame_equal(ours[compared], theirs[compared], check_exact=False, rtol=0, atol=1e-6)
    run = "results/runs/adam-initial-s0/model.keras"
    assert_same_weights(wf / run, twin / run)


def test_a_training_longer_than_its_time_limit_finishes_through_retries(cluster, tmp_path):
    """runtime 1 minute for about 1.5-2 minutes of work (28 epochs; an attempt trains about 14
    on an AMD EPYC core, about 20 on a faster one): SLURM ends each attempt at its limit
    (TIMEOUT, SIGTERM then SIGKILL); each retry resumes where the last one saved, or restores
    the outputs when the limit landed after they were written."""
    archive = tmp_path / "cifar-10-python.tar.gz"
    md5 = make_canonical_python_archive(archive, n_train_per_class=500, n_test_per_class=10)
    target = "results/runs/adam-initial-s0/metrics.json"
    args = [target, *config_args(
        data_source=archive, data_checksum=f"md5:{md5}", validation_size=500,
        max_train_images=0, max_test_images=0, threads=1, deterministic="true",
        variants="{initial: {epochs: 28}}")]
    wf = copy_workflow(tmp_path / "wf")
    started = time.monotonic()
    proc = subprocess.run([str(SNAKEMAKE), "--set-resources", "train:runtime=1", "--retries", "8",
                           *CLUSTER_OPTIONS,
                           *args], cwd=wf, env=_env(cluster), text=True, timeout=900,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-5000:] + "\n" + cluster.logs()
    assert "TIMEOUT" in proc.stdout, proc.stdout[-3000:]
    text = (wf / "results/logs/train/adam-initial-s0.log").read_text()
    attempts = re.findall(r"attempt (\d+) of this job", text)
    resumed = re.findall(r"resuming from the checkpoint (?:after epoch \d+|in epoch \d+, after step \d+)"
                         r"|outputs before it was stopped: they are restored", text)
    print(f"finished in {seconds:.0f} s through attempts {attempts}; {resumed}")
    assert len(attempts) >= 2 and attempts == [str(i) for i in range(1, len(attempts) + 1)], text[-3000:]
    assert len(resumed) == len(attempts) - 1, text[-3000:]
    twin = copy_workflow(tmp_path / "twin")  # the same training in one go, on this host
    local = snakemake(twin, "--cores", "1", *args)
    assert local.returncode == 0, local.stdout[-3000:]
    ours, theirs = (pd.read_csv(d / "results/runs/adam-initial-s0/history.csv") for d in (wf, twin))
    compared = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]
    pd.testing.assert_frame_equal(ours[compared], theirs[compared], check_exact=False, rtol=0, atol=1e-6)
    assert_same_weights(wf / "results/runs/adam-initial-s0/model.keras",
                        twin / "results/runs/adam-initial-s0/model.keras")


def test_a_data_error_fails_once_and_is_not_resubmitted(cluster, tmp_path):
    bad = tmp_path / "cifar-10-python.tar.gz"
    bad.write_bytes(b"this is not a tar archive")
    wf = copy_workflow(tmp_path / "wf")
    proc = subprocess.run([str(SNAKEMAKE), *CLUSTER_OPTIONS, "--configfile", "config/smoke.yaml",
                           *config_args(data_source=bad)], cwd=wf, env=_env(cluster), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    assert proc.returncode != 0
    rules = [re.search(r"rule_([a-z_]+)/", log).group(1) for _, _, log in SUBMITTED.findall(proc.stdout)]
    assert rules == ["prepare_data"], (rules, proc.stdout[-3000:])  # submitted once, no retry
    assert "ERROR: " in (wf / "results/logs/prepare_data.log").read_text()
