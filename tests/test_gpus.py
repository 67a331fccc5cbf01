"""cnnopt.common.gpus: one GPU per training, on fake device lists (no GPU needed)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from datasets import make_canonical_python_archive
from workflow_helpers import ROOT, config_args, copy_workflow, snakemake

from cnnopt.common import gpus

LIB = ROOT / "workflow" / "lib"


def fake_env(tmp_path, devices="0,1", **extra) -> dict:
    env = {gpus.DEVICES_ENV: devices, gpus.LOCK_DIR_ENV: str(tmp_path / "locks")}
    env.update(extra)
    return env


HOLDER = textwrap.dedent("""
    import json, os, sys, time
    sys.path.insert(0, sys.argv[1])
    from cnnopt.common import gpus
    allocation = gpus.acquire(1, timeout=float(sys.argv[2]))
    print(json.dumps({"pid": os.getpid(), "visible": os.environ["CUDA_VISIBLE_DEVICES"]}),
          flush=True)
    time.sleep(600)
""")


def start_holder(env: dict, timeout: float = 10) -> subprocess.Popen:
    """A process that takes one GPU, prints what it got and holds it until killed."""
    full = {k: v for k, v in os.environ.items()
            if k not in ("SLURM_JOB_ID", "CUDA_VISIBLE_DEVICES")}
    full.update(env)
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(LIB), str(timeout)], env=full,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def got(proc: subprocess.Popen) -> dict:
    line = proc.stdout.readline()
    assert line, proc.stderr.read()
    return json.loads(line)


def kill_all(procs):
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_devices_come_from_the_fake_list_then_cuda_visible_devices():
    assert gpus.devices({gpus.DEVICES_ENV: "0, 1,3"}) == ["0", "1", "3"]
    assert gpus.devices({gpus.DEVICES_ENV: ""}) == []
    assert gpus.devices({gpus.DEVICES_ENV: "none"}) == []
    assert gpus.devices({"CUDA_VISIBLE_DEVICES": "2,5"}) == ["2", "5"]
    assert gpus.devices({gpus.DEVICES_ENV: "1", "CUDA_VISIBLE_DEVICES": "2,5"}) == ["1"]


def test_devices_from_nvidia_smi(tmp_path, monkeypatch):
    smi = tmp_path / "bin" / "nvidia-smi"
    smi.parent.mkdir()
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-a)'\n"
                   "echo 'GPU 1: NVIDIA H100 (UUID: GPU-b)'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", str(smi.parent))
    assert gpus.devices({}) == ["0", "1"]
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi at all
    assert gpus.devices({}) == []


def test_no_gpu_at_all_runs_on_the_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi
    env = {gpus.LOCK_DIR_ENV: str(tmp_path / "locks")}
    allocation = gpus.acquire(1, env=env)
    assert allocation.devices == [] and allocation.source == "cpu"
    assert env["CUDA_VISIBLE_DEVICES"] == ""  # the framework sees no GPU
    assert "CPU" in allocation.describe()
    env = fake_env(tmp_path, devices="")
    assert gpus.acquire(1, env=env).devices == []
    assert not (tmp_path / "locks").exists()


def test_a_training_that_wants_no_gpu_gets_none(tmp_path):
    env = fake_env(tmp_path)
    allocation = gpus.acquire(0, env=env)
    assert allocation.devices == [] and env["CUDA_VISIBLE_DEVICES"] == ""


def test_n_jobs_on_n_gpus_each_get_their_own(tmp_path):
    env = fake_env(tmp_path, devices="0,1,2")
    procs = [start_holder(env) for _ in range(3)]
    try:
        seen = [got(p)["visible"] for p in procs]
        assert sorted(seen) == ["0", "1", "2"]
        # a fourth must wait: with a short timeout it gives up with a clear error
        with pytest.raises(gpus.GpuUnavailable, match="no 1 free GPU"):
            gpus.acquire(1, env=dict(env), timeout=0.5, poll=0.1)
    finally:
        kill_all(procs)


def test_a_device_listed_k_times_is_shared_by_k_trainings(tmp_path):
    env = fake_env(tmp_path, devices="0,0,1")  # GPU 0 takes two trainings at once, GPU 1 one
    procs = [start_holder(env) for _ in range(3)]
    try:
        seen = [got(p)["visible"] for p in procs]
        assert sorted(seen) == ["0", "0", "1"]
        with pytest.raises(gpus.GpuUnavailable, match="no 1 free GPU"):
            gpus.acquire(1, env=dict(env), timeout=0.5, poll=0.1)
        # a request for two GPUs wants two distinct devices, never two slots of one
        with pytest.raises(gpus.GpuUnavailable, match="3 GPUs requested but only 2 exist"):
            gpus.acquire(3, env=dict(env))
        locks = sorted(p.name for p in (tmp_path / "locks").iterdir())
        assert locks == ["gpu-0.lock", "gpu-0.slot2.lock", "gpu-1.lock"]
    finally:
        kill_all(procs)
    mine = dict(env)
    allocation = gpus.acquire(2, env=mine, timeout=5, poll=0.1)
    assert allocation.devices == ["0", "1"] and mine["CUDA_VISIBLE_DEVICES"] == "0,1"
    allocation.release()


def test_a_killed_job_releases_its_gpu(tmp_path):
    env = fake_env(tmp_path, devices="0")
    holder = start_holder(env)
    try:
        assert got(holder)["visible"] == "0"
        with pytest.raises(gpus.GpuUnavailable):
            gpus.acquire(1, env=dict(env), timeout=0.3, poll=0.1)
        holder.send_signal(signal.SIGKILL)  # no cleanup code runs: the kernel drops the lock
        holder.wait(timeout=10)
        mine = dict(env)
        allocation = gpus.acquire(1, env=mine, timeout=5, poll=0.1)
        assert allocation.devices == ["0"] and mine["CUDA_VISIBLE_DEVICES"] == "0"
        allocation.release()
    finally:
        kill_all([holder])


def test_a_waiting_job_gets_the_gpu_when_it_is_released(tmp_path):
    env = fake_env(tmp_path, devices="0")
    first = gpus.acquire(1, env=dict(env))
    waiter = start_holder(env, timeout=30)
    try:
        time.sleep(1.0)
        assert waiter.poll() is None  # still waiting
        first.release()
        assert got(waiter)["visible"] == "0"
    finally:
        kill_all([waiter])


def test_claim_releases_at_the_end_of_the_block_and_release_is_idempotent(tmp_path):
    env = fake_env(tmp_path, devices="7")
    with gpus.claim(1, env=env) as allocation:
        assert allocation.devices == ["7"] and allocation.source == "lock"
        assert (tmp_path / "locks" / "gpu-7.lock").exists()
        with pytest.raises(gpus.GpuUnavailable):
            gpus.acquire(1, env=dict(env), timeout=0.2, poll=0.05)
    again = gpus.acquire(1, env=dict(env), timeout=1)
    again.release()
    again.release()


def test_several_gpus_are_taken_all_or_nothing(tmp_path):
    env = fake_env(tmp_path, devices="0,1,2")
    holder = start_holder(env)
    try:
        held = got(holder)["visible"]
        mine = dict(env)
        pair = gpus.acquire(2, env=mine, timeout=2, poll=0.1)
        assert held not in pair.devices and len(set(pair.devices)) == 2
        assert mine["CUDA_VISIBLE_DEVICES"] == ",".join(pair.devices)
        with pytest.raises(gpus.GpuUnavailable):  # one left, two wanted: takes none
            gpus.acquire(2, env=dict(env), timeout=0.3, poll=0.1)
        pair.release()
        with pytest.raises(gpus.GpuUnavailable, match="only 3 exist"):
            gpus.acquire(4, env=dict(env))
    finally:
        kill_all([holder])


def test_inside_slurm_the_given_devices_are_kept(tmp_path):
    env = {"SLURM_JOB_ID": "42", "CUDA_VISIBLE_DEVICES": "3",
           gpus.LOCK_DIR_ENV: str(tmp_path / "locks")}
    allocation = gpus.acquire(1, env=env)
    assert allocation.devices == ["3"] and allocation.source == "slurm"
    assert env["CUDA_VISIBLE_DEVICES"] == "3"
    assert not (tmp_path / "locks").exists()  # SLURM chose: nothing to lock
    env = {"SLURM_JOB_ID": "43", gpus.LOCK_DIR_ENV: str(tmp_path / "locks")}
    assert gpus.acquire(1, env=env).devices == []  # SLURM gave no GPU: the CPU
    assert env["CUDA_VISIBLE_DEVICES"] == ""


def test_trainings_sharing_one_slurm_allocation_split_its_gpus(tmp_path):
    env = {"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "4,5",
           gpus.LOCK_DIR_ENV: str(tmp_path / "locks")}
    first = gpus.acquire(1, env=dict(env))
    second = gpus.acquire(1, env=dict(env))
    assert sorted(first.devices + second.devices) == ["4", "5"]  # only SLURM's devices
    assert first.lock_paths[0].parent == tmp_path / "locks" / "slurm-7"
    with pytest.raises(gpus.GpuUnavailable):
        gpus.acquire(1, env=dict(env), timeout=0.2, poll=0.05)
    first.release()
    second.release()


ACQUIRED = re.compile(r"acquired GPU (\S+) \(CUDA_VISIBLE_DEVICES=\S+\) at t=([\d.]+)")
RELEASED = re.compile(r"released GPU (\S+) at t=([\d.]+)")


@pytest.mark.dag
def test_workflow_runs_two_trainings_at_once_on_different_gpus(tmp_path, monkeypatch):
    """snakemake --cores 4 --resources gpu=2 with a fake list of two GPUs."""
    archive = tmp_path / "cifar-10-python.tar.gz"
    md5 = make_canonical_python_archive(archive, n_train_per_class=30, n_test_per_class=10)
    wf = copy_workflow(tmp_path / "wf")
    runs = ["adam-initial-s0", "sgd-initial-s0", "rmsprop-initial-s0"]
    targets = [f"results/runs/{rid}/metrics.json" for rid in runs]
    for name, value in fake_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    proc = snakemake(wf, *targets, "--cores", "4", "--resources", "gpu=2",
                     "--configfile", "config/smoke.yaml", *config_args(
                         data_source=archive, data_checksum=f"md5:{md5}", validation_size=50,
                         max_train_images=0, max_test_images=0, threads=1))
    assert proc.returncode == 0, proc.stdout[-4000:]
    spans = {}
    for rid in runs:
        log = (wf / f"results/logs/train/{rid}.log").read_text()
        start, end = ACQUIRED.search(log), RELEASED.search(log)
        assert start and end, log[-2000:]
        assert start.group(1) == end.group(1)
        spans[rid] = (start.group(1), float(start.group(2)), float(end.group(2)))
        assert json.loads((wf / f"results/runs/{rid}/metrics.json").read_text())
    print("training spans (device, acquired, released):", spans)
    # never more than two at once, never two on one GPU at once
    events = sorted([(t0, 1, dev) for dev, t0, _ in spans.values()]
                    + [(t1, -1, dev) for dev, _, t1 in spans.values()])
    running, busy, peak = 0, set(), 0
    for _, step, dev in events:
        if step > 0:
            assert dev not in busy, spans
            busy.add(dev)
        else:
            busy.discard(dev)
        running += step
        peak = max(peak, running)
    assert peak == 2, spans  # two trainings overlapped, on different GPUs
    assert {dev for dev, _, _ in spans.values()} == {"0", "1"}
