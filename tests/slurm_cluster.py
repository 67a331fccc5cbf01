"""A throw-away single-node SLURM cluster on this machine, for tests.

:class:`SlurmCluster` writes ``slurm.conf``, ``gres.conf`` and ``cgroup.conf`` into a
temporary folder, starts ``munged`` (own key and socket), ``slurmctld`` and ``slurmd`` in
the foreground as child processes (one node, on 127.0.0.1, free ports, no accounting, no
cgroups) with ``gpus`` fake GPU devices for the ``gpu`` GRES, and stops all of them again,
cancelling whatever jobs are left first. Clients (``sbatch``, ``squeue``, ...) find it
through ``SLURM_CONF``: use :attr:`SlurmCluster.env` for the processes that talk to it.

Needs root (the daemons run as root) and Debian's ``slurm-wlm`` and ``munge``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

BINARIES = ("munged", "munge", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol",
            "scancel", "sinfo", "srun")
SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")
CLIENTS = ("srun", "sbatch", "squeue", "scontrol", "scancel", "sinfo")


def _which(name: str) -> str | None:
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(SBIN)
    return shutil.which(name, path=path)


def missing_binaries() -> list[str]:
    """The SLURM and MUNGE programs that are not installed."""
    return [name for name in BINARIES if _which(name) is None]


def why_unavailable() -> str | None:
    """Why no test cluster can start here (``None`` when it can)."""
    missing = missing_binaries()
    if missing:
        return ("SLURM/MUNGE not installed (missing: " + ", ".join(missing)
                + "); install Debian's slurm-wlm and munge, as .ci/run does")
    if os.geteuid() != 0:
        return "the test SLURM cluster needs root to run slurmctld/slurmd"
    return None


def _die_with_parent() -> None:
    """In a daemon's child process: get SIGTERM if the test process dies (Linux only)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _memory_mb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 8000


class SlurmCluster:
    """One node called ``node`` with ``cpus`` CPUs and ``gpus`` fake GPUs."""

    def __init__(self, gpus: int = 2, cpus: int | None = None, memory_mb: int | None = None,
                 node: str = "cnnopt-node") -> None:
        # A short folder: the MUNGE socket path must fit in a unix socket name.
        self.root = Path(tempfile.mkdtemp(prefix="cnnslurm-"))
        self.root.chmod(0o711)  # munged wants its socket's folder searchable by all
        self.gpus = gpus
        self.cpus = cpus or max(2, os.cpu_count() or 2)
        self.memory_mb = memory_mb or max(8000, _memory_mb())
        self.node = node
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.socket = self.root / "munge.socket"
        self.gpu_files: list[Path] = []
        self.processes: dict[str, subprocess.Popen] = {}
        self.bin = self.root / "bin"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self.env["PATH"] = os.pathsep.join([str(self.bin), self.env.get("PATH", ""), *SBIN])
        for var in list(self.env):  # never talk to a surrounding cluster
            if var.startswith(("SLURM_", "SBATCH_", "SRUN_", "SQUEUE_")) and var != "SLURM_CONF":
                del self.env[var]

    # -- configuration -------------------------------------------------------------------------

    def _fake_gpu_files(self) -> list[Path]:
        """Device files for the GRES: character devices (NVIDIA's major 195) or plain files."""
        dev = self.root / "dev"
        dev.mkdir()
        files = []
        for i in range(self.gpus):
            path = dev / f"nvidia{i}"
            try:
                os.mknod(path, 0o666 | 0o020000, os.makedev(195, i))
            except OSError:
                path.touch()
            files.append(path)
        return files

    def _client_wrappers(self) -> None:
        """``srun`` & co. that find this cluster even where ``SLURM_CONF`` was dropped.

        The plugin's job step removes every ``SLURM_*`` variable but a few before it calls
        ``srun``; a real cluster's clients read /etc/slurm, which this test leaves alone.
        """
        self.bin.mkdir()
        for name in CLIENTS:
            real = _which(name)
            if real:
                wrapper = self.bin / name
                wrapper.write_text(f'#!/bin/sh\nSLURM_CONF="{self.conf}" exec "{real}" "$@"\n')
                wrapper.chmod(0o755)

    def write_config(self) -> None:
        self._client_wrappers()
        for sub in ("state", "spool", "log"):
            (self.root / sub).mkdir(exist_ok=True)
        self.gpu_files = self._fake_gpu_files()
        self.ctld_port, self.slurmd_port = _free_port(), _free_port()
        gres = f" Gres=gpu:{self.gpus}" if self.gpus else ""
        r = self.root
        self.conf.write_text(f"""\
# Generated by tests/slurm_cluster.py: a single-node test cluster, no accounting.
ClusterName=cnnopttest
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.socket}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MailProg=/bin/true
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
GresTypes=gpu
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=600
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName={self.node} NodeHostname={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} \
RealMemory={self.memory_mb}{gres} State=UNKNOWN
PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")
        if self.gpus:
            files = ",".join(str(p) for p in self.gpu_files)
            (r / "gres.conf").write_text(
                f"AutoDetect=off\nNodeName={self.node} Name=gpu File={files}\n")
        else:
            (r / "gres.conf").write_text("AutoDetect=off\n")
        # No cgroups: nothing is constrained (the proctrack and task plugins above need none).
        (r / "cgroup.conf").write_text("CgroupAutomount=no\nConstrainCores=no\n"
                                       "ConstrainRAMSpace=no\nConstrainDevices=no\n")

    # -- daemons -------------------------------------------------------------------------------

    def _spawn(self, name: str, *args: str) -> None:
        log = open(self.root / "log" / f"{name}.out", "wb")
        self.processes[name] = subprocess.Popen(
            [_which(name) or name, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
        log.close()

    def _check_alive(self) -> None:
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.logs()}")

    def run(self, *args: str, timeout: float = 30, check: bool = True) -> str:
        """Run a client command against this cluster; return its stdout."""
        proc = subprocess.run(args, env=self.env, text=True, capture_output=True,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc.stdout

    def _wait(self, what: str, ready, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if ready():
                    return
            except (RuntimeError, OSError, subprocess.SubprocessError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"timed out waiting for {what}:\n{self.logs()}")

    def start(self, timeout: float = 90) -> SlurmCluster:
        self.write_config()
        key = self.root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        self._spawn("munged", "--foreground", "--force", f"--socket={self.socket}",
                    f"--key-file={key}", f"--log-file={self.root / 'log' / 'munged.log'}",
                    f"--pid-file={self.root / 'munged.pid'}",
                    f"--seed-file={self.root / 'munged.seed'}")
        self._wait("munged", lambda: subprocess.run(
            [_which("munge"), "-n", "-S", str(self.socket)], capture_output=True,
            timeout=10).returncode == 0, timeout)
        self._spawn("slurmctld", "-D", "-i", "-f", str(self.conf))
        self._wait("slurmctld", lambda: bool(self.run("scontrol", "ping", timeout=10).count("UP")),
                   timeout)
        self._spawn("slurmd", "-D", "-f", str(self.conf), "-N", self.node)

        def idle() -> bool:
            state = self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%T", timeout=10)
            state = state.strip().lower()
            if state.startswith(("down", "drain")):
                self.run("scontrol", "update", f"nodename={self.node}", "state=resume",
                         check=False)
            return state.startswith("idle")

        self._wait(f"node {self.node} to become idle", idle, timeout)
        return self

    def stop(self) -> None:
        """Cancel every job, stop the daemons (even half-started ones); never raises."""
        if self.processes.get("slurmctld") and self.processes["slurmctld"].poll() is None:
            try:
                self.run("scancel", "--full", "--partition=debug", timeout=15, check=False)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and self.run(
                        "squeue", "-h", "-o", "%i", timeout=10, check=False).strip():
                    time.sleep(1)
            except (OSError, subprocess.SubprocessError):
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.processes.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def logs(self, tail: int = 40) -> str:
        """The last lines of every daemon log, for failure messages."""
        out = []
        for path in sorted((self.root / "log").glob("*")):
            lines = path.read_text(errors="replace").splitlines()[-tail:]
            out.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(out)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SlurmCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
