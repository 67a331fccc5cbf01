"""The bench: how fast the library trains and what the workflow adds (BENCHMARKS.md says what
each part measures and how to run it). The Keras measurements run in fresh ``bench/worker.py``
processes, the workflow ones in a scratch copy of the workflow; the table and every number
with its provenance go to results/bench/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "lib"))

from cnnopt.common.provenance import collect_provenance  # noqa: E402
from cnnopt.common.registry import run_id  # noqa: E402
from cnnopt.config import grid, schema  # noqa: E402
from cnnopt.report.formatting import fmt, pm  # noqa: E402

SNAKEMAKE = Path(sys.executable).with_name("snakemake")
MIRROR = Path(os.environ.get("CNNOPT_MIRROR") or ROOT.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz")
PARTS = ("train", "dag", "flops", "parallel", "backends", "fast")
BACKENDS = {"TensorFlow": ("tensorflow", False), "TensorFlow + XLA": ("tensorflow", True),
            "JAX": ("jax", "auto"), "PyTorch": ("torch", "auto")}  # setup: KERAS_BACKEND, jit_compile
TINY_MODEL = {"architecture": "blocks", "filters": [8, 16], "dense": [16]}
TINY = {"validation_size": 20, "max_train_images": 60, "max_test_images": 20, "seeds": [0],
        "defaults": {"epochs": 1, "batch_size": 16, "model": {"filters": [8], "dense": [8]}},
        "grid": [{"optimizers": ["adam"], "variants": ["initial"]}]}
TINY_FAST = {"variants": {"fast": {"epochs": 2, "batch_size": 16, "model": {"filters": [8, 16, 32]},
                                   "schedule": {"decay_epochs": 1}}}}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def worker(threads: int, *tasks: dict, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "bench" / "worker.py"),
                             json.dumps({"threads": threads, "tasks": tasks})], cwd=ROOT, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {})),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def collect(proc: subprocess.Popen) -> list[dict]:
    out, err = proc.communicate(timeout=3600)
    if proc.returncode:
        raise RuntimeError(f"worker failed ({proc.returncode}): {err[-3000:]}")
    return json.loads(out.splitlines()[-1])


def study_models(quick: bool) -> dict[str, tuple[dict, int]]:
    """Model spec and batch size of each kind of run: the study's three and the fast recipe's."""
    if quick:
        return {"tiny blocks": (TINY_MODEL, 16)}
    study = schema.load(ROOT / "config" / "config.yaml")
    fast = schema.load(ROOT / "config" / "config.yaml", yaml.safe_load((ROOT / "config" / "fast.yaml").read_text()))
    specs = {"tutorial (baseline)": grid.run_spec(study, "adam", "baseline", 0),
             "blocks (initial)": grid.run_spec(study, "adam", "initial", 0),
             "blocks + BN + dropout (final)": grid.run_spec(study, "adam", "final", 0),
             "fast recipe": grid.run_spec(fast, "nesterov", "fast", 0)}
    return {name: (s["model"], s["batch_size"]) for name, s in specs.items()}


def measure_keras(parts: set, quick: bool, threads: int, tmp: Path) -> dict:
    """Parts train, flops and parallel: their tasks in one worker on ``threads`` threads, then
    parallel's ``threads`` jobs of one thread each, over one wall-clock window."""
    models, tasks, window = study_models(quick), {}, 1 if quick else 10
    if "train" in parts:
        tasks["train"] = {"mode": "train_vs_fit", "run": ["adam", "initial", 0], "tmp": str(tmp)} | (
            {"n_train": 320, "n_val": 32, "epochs": 3, "repeats": 1, "model": TINY_MODEL} if quick
            else {"n_train": 9000, "n_val": 1000, "epochs": 4, "repeats": 2})
    if "flops" in parts:
        tasks["peak"] = {"mode": "peak", "size": 256 if quick else 2048, "seconds": window / 2}
        tasks |= {name: {"mode": "throughput", "model": spec, "batch": batch, "seconds": window}
                  for name, (spec, batch) in models.items()}
    if "parallel" in parts:
        spec, batch = models["tiny blocks" if quick else "blocks (initial)"]
        tasks["one job"] = {"mode": "throughput", "model": spec, "batch": batch, "seconds": window}
    done = dict(zip(tasks, collect(worker(threads, *tasks.values())), strict=True))
    out = {"train": done["train"]} if "train" in done else {}
    if "peak" in done:
        out["flops"] = {"threads": threads, "peak_gflops": done["peak"]["gflops"],
                        "models": {name: done[name] for name in models}}
    if "one job" in done:
        barrier, deadline = Path(tempfile.mkdtemp(prefix="barrier-", dir=tmp)), time.time() + 600
        procs = [worker(1, tasks["one job"] | {"barrier": str(barrier)}) for _ in range(threads)]
        while len(list(barrier.glob("ready-*"))) < threads and time.time() < deadline and all(
                p.poll() is None for p in procs):
            time.sleep(0.05)
        (barrier / "go").touch()  # every job is warm: they start together
        many = [collect(p)[0] for p in procs]
        jobs, one = [m["images_per_second"] for m in many], done["one job"]["images_per_second"]
        out["parallel"] = {"n": threads, "batch": batch, "jobs_images_per_second": jobs, "single_images_per_second": one,
                           "ratio": sum(jobs) / one, "overlap_s": min(m["window"][1] for m in many)
                           - max(m["window"][0] for m in many)}
    return out


def measure_backends(quick: bool, threads: int) -> list[dict]:
    models = {k: v for k, v in study_models(quick).items() if k not in ("blocks (initial)", "fast recipe")}
    rows = []
    for setup, (backend, jit) in BACKENDS.items():
        if importlib.util.find_spec(backend) is None:
            log(f"{setup}: {backend} is not installed, left out")
            continue
        tasks = [{"mode": "throughput", "model": spec, "batch": batch, "seconds": 1 if quick else 15,
                  "jit_compile": jit} for spec, batch in models.values()]
        results = collect(worker(threads, *tasks, env={"KERAS_BACKEND": backend}))
        rows += [{"model": name, "setup": setup, "batch": r["batch"], "images_per_second": r["images_per_second"]}
                 for name, r in zip(models, results, strict=True)]
    return rows


def snakemake(workdir: Path, *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run([str(SNAKEMAKE), *args], cwd=workdir, text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if proc.returncode:  # with the end of each failed job's log
        logs = [workdir / m for m in re.findall(r"^\s+log: (\S+)", proc.stdout, re.M) if (workdir / m).is_file()]
        raise RuntimeError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-2000:]}"
                           + "".join(f"\n{m}:\n{m.read_text()[-2000:]}" for m in logs))
    return time.perf_counter() - start, proc.stdout


def read_benchmarks(results: Path) -> pd.DataFrame:
    """Every record of the ``benchmark:`` files under ``results/benchmarks``, with its ``rule``
    (the first part of the path) and ``job`` (the file's stem in a rule's folder, else empty)."""
    root = results / "benchmarks"
    frames = [pd.read_csv(f, sep="\t", na_values="-").assign(
        rule=f.relative_to(root).parts[0].removesuffix(".tsv"), job=f.stem if f.parent != root else "")
        for f in sorted(root.rglob("*.tsv"))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["s", "rule", "job"])


def overhead(wall: float, bench: pd.DataFrame) -> dict:
    total = float(bench["s"].sum())
    return {"wall_s": wall, "jobs_s": total, "ratio": wall / total if total else None,
            "s_by_rule": bench.groupby("rule")["s"].sum().to_dict(),
            "jobs_by_rule": bench.groupby("rule")["job"].count().to_dict()}


def scratch_workflow(dest: Path, quick: bool) -> Path:
    """A copy of the workflow without results; quick: with tiny configs and a tiny image folder."""
    dest.mkdir(parents=True)
    for name in ("Snakefile", "workflow", "config", "report", "envs"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, dest / name)
    if quick:
        import numpy as np
        from PIL import Image

        (dest / "config" / "tiny.yaml").write_text(yaml.safe_dump(TINY))
        (dest / "config" / "tiny-fast.yaml").write_text(yaml.safe_dump(TINY_FAST))
        rng = np.random.default_rng(0)
        for split, n, c in ((s, n, c) for s, n in (("train", 9), ("test", 3)) for c in range(10)):
            (dest / "images" / split / f"c{c}").mkdir(parents=True)
            for i in range(n):
                pixels = rng.normal(25 * c, 30, (32, 32, 3)).clip(0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(dest / "images" / split / f"c{c}" / f"{i}.png")
    return dest


def measure_dag(wf: Path, quick: bool, data: list[str], threads: int) -> dict:
    """The smoke DAG, trainings one at a time (threads = cores): wall against its jobs' own s."""
    args = ["--cores", str(threads), "--configfile", "config/smoke.yaml", *(["config/tiny.yaml"] if quick else []),
            "--config", f"threads={threads}", *data]
    args += ["--", "results/runs/adam-initial-s0/evaluation.json"] if quick else []
    wall, _ = snakemake(wf, *args)
    noop, out = snakemake(wf, *args)
    return overhead(wall, read_benchmarks(wf / "results")) | {
        "noop_s": noop, "noop_nothing_to_do": "Nothing to be done" in out}


def measure_fast(wf: Path, quick: bool, data: list[str], threads: int, seeds: list[int]) -> dict:
    """The fast runs of config/fast.yaml through the workflow, read from their own files."""
    runs = [run_id("nesterov", "fast", s) for s in seeds]
    args = ["--cores", str(threads), "--configfile", "config/config.yaml", "config/fast.yaml",
            *(["config/tiny.yaml", "config/tiny-fast.yaml"] if quick else []), "--config", f"threads={threads}",
            f"seeds=[{','.join(map(str, seeds))}]", *data, "--", *(f"results/runs/{r}/evaluation.json" for r in runs)]
    wall, _ = snakemake(wf, *args)
    jobs = read_benchmarks(wf / "results").query("rule == 'train'").set_index("job")["s"]
    rows = []
    for r in runs:
        m, ev = (json.loads((wf / "results" / "runs" / r / f).read_text()) for f in ("metrics.json", "evaluation.json"))
        rows.append({"run": r, "epochs": m["epochs_run"], "train_s": m["train_seconds"], "job_s": float(jobs[r]),
                     "images_per_second": m["images_per_second"], "final_val_accuracy": m["final_val_accuracy"],
                     "test_accuracy": ev["test_accuracy"]})
    return {"command": f"snakemake {' '.join(args)}", "wall_s": wall, "runs": rows}


def _sd(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) > 1 else None


def table(r: dict) -> pd.DataFrame:
    """One row per measurement: what, its setting, and the value."""
    rows = []
    if t := r.get("train"):
        ips, call = t["images_per_second"], t["call_s"]
        rows.append(("library train() / bare model.fit, images/s per epoch",
                     f"{t['run']}, batch {t['batch']}, {r['threads']} threads, {t['n_train']} images, "
                     f"epochs 2-{t['epochs']}", f"{fmt(t['ratio'], 3)} ({ips['library']:.0f} / {ips['fit']:.0f}); "
                     f"whole call {call['library']:.1f} s / {call['fit']:.1f} s"))
    if d := r.get("dag"):
        rows += [("smoke DAG wall / sum of its jobs' benchmark s",
                  f"{sum(d['jobs_by_rule'].values())} jobs, --cores {r['threads']}, trainings one at a time",
                  f"{fmt(d['ratio'], 3)} ({d['wall_s']:.1f} s / {d['jobs_s']:.1f} s)"),
                 ("jobs' benchmark s by rule", "", ", ".join(f"{k} {v:.1f}" for k, v in d["s_by_rule"].items())),
                 ("no-op rerun of the smoke DAG", "nothing to do" if d["noop_nothing_to_do"] else "NOT a no-op",
                  f"{d['noop_s']:.2f} s")]
    if f := r.get("flops"):
        rows.append(("fp32 matmul peak (keras.ops.matmul)", f"{f['threads']} threads", f"{f['peak_gflops']:.0f} GFLOP/s"))
        rows += [(f"training FLOP/s: {name}", f"{m['forward_flops'] / 1e6:.1f} MFLOP/image forward, batch {m['batch']}, "
                  f"{m['images_per_second']:.0f} images/s", f"{m['training_gflops']:.1f} GFLOP/s = "
                  f"{100 * m['training_gflops'] / f['peak_gflops']:.0f} % of peak") for name, m in f["models"].items()]
    if p := r.get("parallel"):
        rows.append((f"{p['n']} jobs x 1 thread / 1 job x {p['n']} threads, images/s", f"batch {p['batch']}",
                     f"{fmt(p['ratio'])} ({sum(p['jobs_images_per_second']):.0f} / {p['single_images_per_second']:.0f})"))
    rows += [(f"images/s on {b['setup']}", f"{b['model']}, batch {b['batch']}", f"{b['images_per_second']:.0f}")
             for b in r.get("backends", [])]
    if fast := r.get("fast"):
        rows += [(f"fast recipe {x['run']}: test accuracy", f"{x['epochs']} epochs, training {x['train_s']:.0f} s "
                  f"(job {x['job_s']:.0f} s), {x['images_per_second']:.0f} images/s",
                  f"{100 * x['test_accuracy']:.2f} %") for x in fast["runs"]]
        acc, secs = [100 * x["test_accuracy"] for x in fast["runs"]], [x["train_s"] for x in fast["runs"]]
        rows.append((f"fast recipe, mean ± sd of {len(acc)} seeds", f"training {pm(statistics.mean(secs), _sd(secs), 0)} s",
                     f"{pm(statistics.mean(acc), _sd(acc))} %"))
    return pd.DataFrame(rows, columns=["measurement", "setting", "value"])


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, without the usage
        self.exit(2, f"bench: {message}\n")


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text!r}")
    return int(text)


def main(argv=None) -> int:
    parser = Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the code paths")
    parser.add_argument("--fast", action="store_true", help="also the fast recipe through the workflow")
    parser.add_argument("--backends", action="store_true", help="also compare the Keras backends")
    parser.add_argument("--only", nargs="+", choices=PARTS, help="run only these parts")
    parser.add_argument("--threads", type=positive, default=2, help="threads per job, cores of a DAG (2)")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds of the fast runs (default: the config's)")
    parser.add_argument("--data", type=Path, help=f"data source of the DAGs (default {MIRROR} if present)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench", help="output folder")
    args = parser.parse_args(argv)
    if args.data and not args.data.exists():
        parser.error(f"--data {args.data}: no such file or folder")
    if any(s < 0 for s in args.seeds or []):
        parser.error("--seeds must be non-negative")
    parts = set(args.only or PARTS[:4]) | {p for p in ("fast", "backends") if getattr(args, p)}
    seeds = args.seeds or ([0] if args.quick else schema.load(ROOT / "config" / "config.yaml")["seeds"])
    r: dict = {"provenance": collect_provenance(ROOT, version("snakemake")), "quick": args.quick,
               "command": " ".join(["bench/run.py", *(sys.argv[1:] if argv is None else argv)]),
               "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "threads": args.threads}
    tmp = Path(tempfile.mkdtemp(prefix="cnnopt-bench-"))

    def part(names: set, fn, *a):  # fn returns {part: result}; a failure is recorded, the rest runs
        if names & parts:
            log(f"measuring {', '.join(sorted(names & parts))}")
            try:
                r.update(fn(*a))
            except Exception as exc:  # noqa: BLE001
                log(f"failed: {exc}")
                r.setdefault("errors", {})["+".join(sorted(names & parts))] = str(exc)[-6000:]

    def workflow_parts():
        if {"dag", "fast"} & parts:
            try:
                wf = scratch_workflow(tmp / "workflow", args.quick)
            except OSError as exc:
                r.setdefault("errors", {})["workflow"] = str(exc)
                return
            source = wf / "images" if args.quick else args.data or (MIRROR if MIRROR.is_file() else None)
            data = [f"data_source={Path(source).resolve()}"] if source else []
            part({"dag"}, lambda: {"dag": measure_dag(wf, args.quick, data, args.threads)})
            part({"fast"}, lambda: {"fast": measure_fast(wf, args.quick, data, args.threads, seeds)})

    # quick: the tiny workflow runs beside the workers (its numbers check code paths, not speed)
    flow = threading.Thread(target=workflow_parts)
    try:
        if args.quick:
            flow.start()
        part({"train", "flops", "parallel"}, measure_keras, parts, args.quick, args.threads, tmp)
        part({"backends"}, lambda: {"backends": measure_backends(args.quick, args.threads)})
        if args.quick:
            flow.join()
        else:
            workflow_parts()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    r["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    markdown = table(r).to_markdown(index=False, disable_numparse=True)
    args.out.mkdir(parents=True, exist_ok=True)
    name = "quick" if args.quick else "bench"
    (args.out / f"{name}.json").write_text(json.dumps(r, indent=2, default=str) + "\n")
    (args.out / f"{name}.md").write_text(f"commit {r['provenance']['commit']}, `{r['command']}`, "
                                         f"{r['started']} to {r['finished']}\n\n{markdown}\n")
    print(markdown)
    return 1 if r.get("errors") else 0


if __name__ == "__main__":
    sys.exit(main())
