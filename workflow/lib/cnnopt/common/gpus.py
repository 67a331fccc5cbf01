"""One GPU per training on a machine with several: a lock file per device.

Snakemake counts GPUs (``--resources gpu=N``) but does not say *which* GPU a job may use.
:func:`claim` picks free devices, takes an exclusive ``flock`` on one lock file per device
and sets ``CUDA_VISIBLE_DEVICES`` so that the framework, imported afterwards, sees only
them. The kernel drops an ``flock`` when its process ends, however it ends (even on
``SIGKILL``), so a killed training never leaves its GPU taken. Lock files stay on disk and
are never removed (removing one would let two processes lock two different files).

Where the devices come from, first match wins:

1. inside a SLURM job (``SLURM_JOB_ID`` set, ``CNNOPT_GPU_DEVICES`` not): the devices SLURM
   gave in ``CUDA_VISIBLE_DEVICES``, kept as they are when they are no more than wanted
   (nothing is locked); a job that SLURM gave no GPU runs on the CPU; several trainings in
   one allocation (``salloc``) lock among SLURM's devices only;
2. ``CNNOPT_GPU_DEVICES``: a comma-separated list of device ids (``"0,1"``; ``""`` or
   ``"none"`` for none), e.g. a fake list for tests or a subset of the machine's GPUs; a
   device listed k times (``"0,0,0,0"``) is shared by up to k trainings at once (one lock
   file per slot), for small models that leave a large GPU mostly idle;
3. a ``CUDA_VISIBLE_DEVICES`` set before the run (the user's subset of devices);
4. ``nvidia-smi -L``, when it is installed;
5. none: the training runs on the CPU.

Locks live in ``CNNOPT_GPU_LOCK_DIR`` (default: ``<tmp>/cnnopt-gpu-locks-<uid>``); every job
that shares devices must share this folder, which one machine's jobs do by default.

This module never imports Snakemake or a deep-learning framework.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cnnopt.common.errors import CnnoptError

DEVICES_ENV = "CNNOPT_GPU_DEVICES"
LOCK_DIR_ENV = "CNNOPT_GPU_LOCK_DIR"
VISIBLE_ENV = "CUDA_VISIBLE_DEVICES"

log = logging.getLogger("cnnopt.common.gpus")


class GpuUnavailable(CnnoptError):
    """No GPU became free in time."""


@dataclass
class Allocation:
    """The devices a job holds: ``devices`` empty means the CPU."""

    devices: list[str]
    source: str  # "lock", "slurm" or "cpu"
    lock_paths: list[Path] = field(default_factory=list)
    acquired_at: float = field(default_factory=time.time)
    _fds: list[int] = field(default_factory=list, repr=False)

    @property
    def visible(self) -> str:
        """The value of ``CUDA_VISIBLE_DEVICES`` for this allocation."""
        return ",".join(self.devices)

    def describe(self) -> str:
        if not self.devices:
            return "no GPU: running on the CPU"
        where = {"lock": f"locked in {self.lock_paths[0].parent}", "slurm": "given by SLURM"}
        return f"GPU {self.visible} ({VISIBLE_ENV}={self.visible}, {where[self.source]})"

    def release(self) -> None:
        """Unlock the devices (idempotent); the kernel does the same when the process dies."""
        for fd in self._fds:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        self._fds.clear()


def _parse_list(text: str) -> list[str]:
    if text.strip().lower() in ("", "none", "-1", "nodevfiles"):
        return []
    return [part.strip() for part in text.split(",") if part.strip()]


def _nvidia_smi() -> list[str]:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return re.findall(r"^GPU (\d+):", out, flags=re.MULTILINE)


def devices(env: Mapping[str, str] | None = None) -> list[str]:
    """The ids of the GPUs this machine offers to trainings (outside SLURM), in order."""
    env = os.environ if env is None else env
    if DEVICES_ENV in env:
        return _parse_list(env[DEVICES_ENV])
    if VISIBLE_ENV in env:
        return _parse_list(env[VISIBLE_ENV])
    return _nvidia_smi()


def lock_dir(env: Mapping[str, str] | None = None) -> Path:
    """The folder of the per-device lock files."""
    env = os.environ if env is None else env
    if env.get(LOCK_DIR_ENV):
        return Path(env[LOCK_DIR_ENV])
    return Path(tempfile.gettempdir()) / f"cnnopt-gpu-locks-{os.getuid()}"


def _lock_name(device: str, slot: int = 0) -> str:
    name = "gpu-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in device)
    return name + (f".slot{slot + 1}" if slot else "") + ".lock"


def _slots(found: list[str]) -> list[tuple[str, int]]:
    """Each listed device with its slot: the k-th listing of a device is its slot k-1."""
    seen: dict[str, int] = {}
    slots = []
    for device in found:
        slots.append((device, seen.get(device, 0)))
        seen[device] = seen.get(device, 0) + 1
    return slots


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)  # who holds it, for people looking at the folder
    os.write(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode())
    return fd


def acquire(wanted: int = 1, *, env: MutableMapping[str, str] | None = None,
            timeout: float | None = None, poll: float = 0.5) -> Allocation:
    """Take ``wanted`` free GPUs and make only them visible (``env[CUDA_VISIBLE_DEVICES]``).

    Waits while every device is taken (``timeout`` seconds; ``None``: for ever). With no
    device at all, or ``wanted`` 0, returns a CPU allocation and hides every GPU. Call
    before the framework is imported; release with :meth:`Allocation.release`.
    """
    env = os.environ if env is None else env
    wanted = max(0, int(wanted))
    slurm_job = env.get("SLURM_JOB_ID") if DEVICES_ENV not in env else None
    found = _parse_list(env.get(VISIBLE_ENV, "")) if slurm_job else devices(env)
    if wanted == 0 or not found:
        env[VISIBLE_ENV] = ""
        why = ("no GPU requested" if wanted == 0 else
               f"SLURM job {slurm_job} was given no GPU" if slurm_job else "no GPU found")
        log.info("%s: running on the CPU", why)
        return Allocation([], "cpu")
    if slurm_job and len(found) <= wanted:  # the usual case: SLURM chose for this job
        log.info("SLURM job %s: %s=%s given by SLURM", slurm_job, VISIBLE_ENV, ",".join(found))
        return Allocation(found, "slurm")
    if wanted > len(set(found)):
        raise GpuUnavailable(f"{wanted} GPUs requested but only {len(set(found))} exist: "
                             f"{','.join(dict.fromkeys(found))}")
    folder = lock_dir(env)
    if slurm_job:  # several trainings share one SLURM allocation (salloc): split its GPUs
        folder = folder / f"slurm-{slurm_job}"
    folder.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    next_notice = 0.0
    while True:
        held: list[tuple[str, Path, int]] = []
        for device, slot in _slots(found):
            if any(device == d for d, _, _ in held):  # one request, distinct devices
                continue
            path = folder / _lock_name(device, slot)
            fd = _try_lock(path)
            if fd is not None:
                held.append((device, path, fd))
                if len(held) == wanted:
                    break
        if len(held) == wanted:
            allocation = Allocation([d for d, _, _ in held], "lock", [p for _, p, _ in held],
                                    _fds=[fd for _, _, fd in held])
            env[VISIBLE_ENV] = allocation.visible
            log.info("acquired GPU %s (%s=%s) at t=%.3f, lock folder %s", allocation.visible,
                     VISIBLE_ENV, allocation.visible, allocation.acquired_at, folder)
            return allocation
        for _, _, fd in held:  # all or nothing: never sit on part of a request
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        waited = time.monotonic() - start
        if timeout is not None and waited >= timeout:
            raise GpuUnavailable(f"no {wanted} free GPU(s) among {','.join(found)} after "
                                 f"{waited:.0f} s (locks in {folder})")
        if waited >= next_notice:
            log.info("all GPUs (%s) are taken; waiting for one to be released",
                     ",".join(found))
            next_notice = waited + 60
        time.sleep(poll)


@contextmanager
def claim(wanted: int = 1, **kwargs) -> Iterator[Allocation]:
    """:func:`acquire` for the duration of a ``with`` block, logging the release."""
    allocation = acquire(wanted, **kwargs)
    try:
        yield allocation
    finally:
        allocation.release()
        if allocation.source == "lock":
            log.info("released GPU %s at t=%.3f after %.1f s", allocation.visible, time.time(),
                     time.time() - allocation.acquired_at)
