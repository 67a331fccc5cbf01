"""The benchmark suite: step efficiency (P1), workflow overhead (P2), hardware use (P5), the
whole study (P3) and the fast recipe (P4). Prints a markdown table, writes JSON and markdown.

    .venv/bin/python bench/run.py            # the real measurements (about 10 minutes, 2 cores)
    .venv/bin/python bench/run.py --quick    # the same code paths on tiny sizes (< 1 minute)

Every ratio is measured side by side in this one run. Each measurement runs in a fresh
worker process (``bench/worker.py``), since thread pools are fixed when Keras starts.
Run it on an otherwise idle machine: other load distorts every number.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import pandas as pd  # noqa: E402
from common import ROOT, Stopwatch, collect, load_config, provenance, run_worker, start_workers  # noqa: E402
from workflow_helpers import COPIED, copy_workflow  # noqa: E402  (the tests' scratch copy)

SNAKEMAKE = Path(sys.executable).with_name("snakemake")
MIRROR = Path(os.environ.get("CNNOPT_MIRROR") or ROOT.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz")

# Quick mode: the same code paths, tiny sizes.
TINY_MODEL = {"architecture": "blocks", "filters": [8, 16], "dense": [16]}
TINY_CONFIG = """\
validation_size: 20
max_train_images: 60
max_test_images: 20
threads: 1
defaults:
  epochs: 1
  batch_size: 16
  model: {filters: [8], dense: [8]}
grid:
  - {optimizers: [adam], variants: [initial]}
"""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- P5 / P1 workers


def measure_peak(quick: bool) -> dict:
    size, seconds = (512, 0.5) if quick else (2048, 4.0)
    return {str(n): run_worker(["peak", "--threads", str(n), "--size", str(size),
                                "--seconds", str(seconds)]) for n in (1, 2)}


def measure_p1(quick: bool, threads: int) -> dict:
    if quick:
        args = ["--n-train", "320", "--n-val", "32", "--epochs", "2", "--repeats", "1",
                "--model", json.dumps(TINY_MODEL)]
    else:  # the study's proportions (validation = 1/9 of training), a fifth of its size
        args = ["--n-train", "9000", "--n-val", "1000", "--epochs", "3", "--repeats", "2"]
    return run_worker(["p1", "--threads", str(threads), "--run", "adam-initial-s0", *args])


def study_models(quick: bool, batch: int) -> dict[str, tuple[dict, int]]:
    """The distinct model kinds of the default study, plus the fast recipe's model (and batch)."""
    if quick:
        return {"tiny blocks": (TINY_MODEL, batch)}
    cfg = load_config("config/config.yaml")
    from cnnopt import config as cnnconfig

    def spec(opt, var):
        s = cnnconfig.run_spec(cfg, opt, var, 0)
        return s["model"], s["batch_size"]

    models = {
        "tutorial (baseline)": spec("adam", "baseline"),
        "blocks (initial, ablation)": spec("adam", "initial"),
        "blocks + BN + dropout (adam final)": spec("adam", "final"),
    }
    if (ROOT / "config" / "fast.yaml").is_file():
        fcfg = load_config("config/config.yaml", "config/fast.yaml")
        for s in cnnconfig.expand_runs(fcfg).values():
            if s["model"]["architecture"] == "fast":
                precision = s["model"].get("precision", "float32")
                models[f"fast ({s['variant']}, {precision})"] = (s["model"], s["batch_size"])
                if precision != "float32":  # the same model in float32, side by side
                    models["fast (float32)"] = ({**s["model"], "precision": "float32"}, s["batch_size"])
                break
    return models


def measure_models(quick: bool, threads: int, batch: int) -> dict:
    seconds = 2.0 if quick else 8.0
    out = {}
    for name, (spec, model_batch) in study_models(quick, batch).items():
        log(f"P5 throughput of {name}")
        out[name] = run_worker(["throughput", "--threads", str(threads), "--batch", str(model_batch),
                                "--seconds", str(seconds), "--model", json.dumps(spec)])
    return out


def _together(arg_lists: list[list[str]], tmp: Path) -> list[dict]:
    """Start workers, wait until each is warm, then give them one common start time."""
    barrier = Path(tempfile.mkdtemp(prefix="barrier-", dir=tmp))
    procs = start_workers([[*a, "--barrier", str(barrier)] for a in arg_lists])
    deadline = time.time() + 600
    while len(list(barrier.glob("ready-*"))) < len(procs):
        if time.time() > deadline or any(p.poll() is not None for p in procs):
            break
        time.sleep(0.05)
    (barrier / "go.tmp").write_text(str(time.time() + 0.2))
    (barrier / "go.tmp").rename(barrier / "go")
    return collect(procs)


def measure_parallel(quick: bool, n: int, batch: int, model: dict, tmp: Path) -> dict:
    """N jobs with one thread each against one job with N threads, same model and batch."""
    seconds = 1.0 if quick else 12.0
    base = ["throughput", "--batch", str(batch), "--seconds", str(seconds), "--model", json.dumps(model)]
    many = _together([[*base, "--threads", "1"]] * n, tmp)
    one = _together([[*base, "--threads", str(n)]], tmp)[0]
    overlap = min(w["window_end"] for w in many) - max(w["window_start"] for w in many)
    total = sum(w["images_per_second"] for w in many)
    return {"n": n, "model": model, "batch": batch,
            "parallel_images_per_second": [w["images_per_second"] for w in many],
            "parallel_total_images_per_second": total,
            "parallel_window_overlap_s": overlap,
            "single_images_per_second": one["images_per_second"],
            "ratio": total / one["images_per_second"]}


# --------------------------------------------------------------------------- P2 workflow overhead


def tiny_image_folder(dest: Path, per_class: int = 8) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", per_class * 10), ("test", per_class * 3)):
        for c in range(10):
            folder = dest / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n // 10 + 1):
                pixels = np.clip(rng.normal(25 * c, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return dest


def snakemake(workdir: Path, *args: str, timeout: float = 3600) -> tuple[float, str, int]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    with Stopwatch() as sw:
        proc = subprocess.run([str(SNAKEMAKE), *args], cwd=workdir, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    return sw.seconds, proc.stdout, proc.returncode


BENCHMARK_COLUMNS = ["file", "rule", "job", "s", "h:m:s", "max_rss", "max_vms", "max_uss",
                     "max_pss", "io_in", "io_out", "mean_load", "cpu_time"]


def read_benchmarks(results: Path) -> pd.DataFrame:
    """Every record of the ``benchmark:`` files under ``results/benchmarks``, one row each.

    A file holds one record per run of its job (more with ``repeat()``). Added columns: the
    file's path below ``benchmarks/``, its ``rule`` (the first part of that path) and ``job``
    (the file's stem in a rule's folder, e.g. ``adam-initial-s0``; empty for a rule's single
    file). Snakemake writes ``-`` where it could not measure; that reads as NaN.
    """
    root = results / "benchmarks"
    frames = []
    for tsv in sorted(root.rglob("*.tsv")):
        rel = tsv.relative_to(root)
        frames.append(pd.read_csv(tsv, sep="\t", na_values=["-"]).assign(
            file=rel.as_posix(), rule=rel.parts[0].removesuffix(".tsv"),
            job=rel.stem if len(rel.parts) > 1 else ""))
    if not frames:
        text = ("file", "rule", "job", "h:m:s")
        return pd.DataFrame({c: pd.Series(dtype=object if c in text else float)
                             for c in BENCHMARK_COLUMNS})
    bench = pd.concat(frames, ignore_index=True)
    return bench[[c for c in BENCHMARK_COLUMNS if c in bench] +
                 [c for c in bench if c not in BENCHMARK_COLUMNS]]


def overhead(wall: float, bench: pd.DataFrame) -> dict:
    """Wall time against the sum of the jobs' benchmark seconds (``read_benchmarks``)."""
    total = float(bench["s"].sum())
    by_rule = bench.groupby("rule")
    return {"wall_s": wall, "benchmark_sum_s": total, "benchmark_files": bench["file"].nunique(),
            "benchmark_s_by_rule": by_rule["s"].sum().to_dict(),
            "benchmark_jobs_by_rule": by_rule["file"].nunique().to_dict(),
            "ratio": wall / total if total else None}


def cpu_per_wall(bench: pd.DataFrame, rule: str) -> float | None:
    """CPU seconds per wall second of ``rule``'s jobs (2 = both cores busy), over the records
    that have both numbers."""
    jobs = bench.loc[bench["rule"] == rule, ["s", "cpu_time"]].dropna()
    return float(jobs["cpu_time"].sum() / jobs["s"].sum()) if jobs["s"].sum() else None


def measure_p2(quick: bool, tmp: Path) -> dict:
    wf = copy_workflow(tmp / "smoke")
    if quick:
        (wf / "config" / "tiny.yaml").write_text(TINY_CONFIG)
        source = tiny_image_folder(tmp / "images")
        args = ["--cores", "2", "--configfile", "config/smoke.yaml", "config/tiny.yaml",
                "--config", f"data_source={source}", "--",
                "results/runs/adam-initial-s0/evaluation.json"]
    else:
        source = MIRROR if MIRROR.is_file() else None
        args = ["--cores", "2", "--configfile", "config/smoke.yaml"]
        if source:
            args += ["--config", f"data_source={source}"]
    log(f"P2 smoke DAG in {wf}")
    wall, out, rc = snakemake(wf, *args)
    if rc:
        raise RuntimeError(f"smoke DAG failed:\n{out[-4000:]}")
    result = overhead(wall, read_benchmarks(wf / "results"))
    jobs = result["benchmark_jobs_by_rule"]
    result["prepare_data_jobs"], result["train_jobs"] = jobs.get("prepare_data", 0), jobs.get("train", 0)
    log("P2 no-op rerun of the smoke DAG")
    noop, out, rc = snakemake(wf, *args)
    result["noop_smoke_s"] = noop
    result["noop_smoke_nothing_to_do"] = rc == 0 and "Nothing to be done" in out
    dry, out, rc = snakemake(wf, "-n", *args)
    result["dryrun_smoke_s"] = dry
    arrays = wf / "results" / "data" / "cifar10.npz"
    result["load"] = run_worker(["load", "--arrays", str(arrays)]
                                + (["--validation-size", "20"] if quick else []))
    return result


def measure_noop_default(study: Path, tmp: Path) -> dict | None:
    """A no-op ``snakemake`` on the default config: a copy of the finished study, its own code."""
    if not (study / "results" / "tables" / "summary.json").is_file():
        return None
    dest = tmp / "study-copy"
    dest.mkdir()
    for name in (*COPIED, "results"):
        src = study / name
        if src.is_dir():
            shutil.copytree(src, dest / name, symlinks=True, copy_function=shutil.copy2,
                            ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    shutil.copytree(study / ".snakemake" / "metadata", dest / ".snakemake" / "metadata",
                    copy_function=shutil.copy2)
    args = ["--cores", "2", "--config", f"data_source={MIRROR}"]
    dry, out, rc = snakemake(dest, "-n", *args)
    if rc or "Nothing to be done" not in out:  # never start the study's jobs here
        return {"median_s": None, "nothing_to_do": False, "dryrun_s": dry, "last_output": out[-1500:]}
    times, nothing = [], True
    for _ in range(3):
        seconds, out, rc = snakemake(dest, *args)
        times.append(seconds)
        nothing &= rc == 0 and "Nothing to be done" in out
    return {"seconds": times, "median_s": statistics.median(times), "nothing_to_do": nothing,
            "dryrun_s": dry, "last_output": out[-600:]}


# --------------------------------------------------------------------------- P3 / P4 readers


def read_study(study: Path) -> dict | None:
    start, end = Path(f"{study}.start"), Path(f"{study}.end")
    if not (start.is_file() and end.is_file()):
        return None
    wall = float(end.read_text().split()[0]) - float(start.read_text().split()[0])
    bench = read_benchmarks(study / "results")
    result = overhead(wall, bench)
    result["train_cpu_per_wall"] = cpu_per_wall(bench, "train")
    runs = []
    for metrics in sorted((study / "results" / "runs").glob("*/metrics.json")):
        m = json.loads(metrics.read_text())
        scored = metrics.with_name("evaluation.json")  # the test set is scored by evaluate alone
        ev = json.loads(scored.read_text()) if scored.is_file() else {}
        runs.append({"test_accuracy": ev.get("test_accuracy")} | {
            k: m.get(k) for k in ("run_id", "train_seconds", "images_per_second", "epochs_run")})
    result.update(study=str(study), runs=runs, wall_min=wall / 60)
    return result


def read_p4() -> dict | None:
    path = ROOT / "bench" / "p4_results.json"
    return json.loads(path.read_text()) if path.is_file() else None


# --------------------------------------------------------------------------- the table


def cpu_busy_s() -> float | None:
    """CPU seconds the whole machine has been busy (all processes), from /proc/stat."""
    try:
        fields = [float(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    import resource

    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))


def fmt(x, digits=2):
    return "n/a" if x is None else f"{x:.{digits}f}"


TABLE_COLUMNS = ["id", "measure", "value", "goal", "met"]


def table(r: dict) -> str:
    """The results ``r`` as a Markdown table: one row per measure, its goal and whether met."""
    rows = []

    def add(pid, what, value, goal="", met=None):
        rows.append((pid, what, value, goal, "" if met is None else ("yes" if met else "**no**")))

    if "p1" in r:
        p = r["p1"]
        ips = p["images_per_second"]
        add("P1", f"workflow `train()` / bare `model.fit`, images/s (paper's blocks model, batch "
            f"{p['batch_size']}, {p['threads']} threads, {p['n_train']} images, epochs 2-{p['epochs']})",
            f"{p['ratio']:.3f} ({ips['workflow']:.0f} / {ips['bare']:.0f})", ">= 0.95",
            p["ratio"] >= 0.95)
        add("P1a", "of which: per-epoch validation (bare fit with validation / without)",
            f"{1 - p['validation_share']:.3f} ({ips['bare_validation']:.0f} img/s)")
        add("P1b", "workflow / bare fit with the same validation", f"{p['ratio_vs_bare_with_validation']:.3f}")
    if "p2" in r:
        p = r["p2"]
        add("P2", f"smoke DAG wall / sum of job benchmark s ({p['train_jobs']} trainings)",
            f"{fmt(p['ratio'], 3)} ({p['wall_s']:.1f} s / {p['benchmark_sum_s']:.1f} s)", "<= 1.15",
            p["ratio"] is not None and p["ratio"] <= 1.15)
        add("P2a", "of which, by rule: job benchmark s",
            ", ".join(f"{k} {v:.1f} s" for k, v in p["benchmark_s_by_rule"].items()))
        if r.get("noop_default") and r["noop_default"].get("median_s") is None:
            add("P2b", "no-op `snakemake`, default config (copy of the finished study)",
                "not measured: its dry run planned jobs", "<= 3 s", False)
        elif r.get("noop_default"):
            n = r["noop_default"]
            add("P2b", "no-op `snakemake --cores 2`, default config, finished study (median of 3)",
                f"{n['median_s']:.2f} s" + ("" if n["nothing_to_do"] else " (NOT a no-op)"),
                "<= 3 s", n["median_s"] <= 3 and n["nothing_to_do"])
        else:
            add("P2b", "no-op `snakemake`, default config", "not measured (no finished study)", "<= 3 s")
        add("P2c", "no-op `snakemake --cores 2`, smoke config / dry run `-n`",
            f"{p['noop_smoke_s']:.2f} s / {p['dryrun_smoke_s']:.2f} s")
        add("P2d", "data decoded once: prepare_data jobs in the DAG", str(p["prepare_data_jobs"]), "1",
            p["prepare_data_jobs"] == 1)
        load = p["load"]
        add("P2e", f"training job's load of the cached arrays + split ({load['bytes'] / 1e6:.0f} MB)",
            f"{load['seconds_median']:.3f} s", "< 1 s", load["seconds_median"] < 1)
    if "peak" in r:
        pk = r["peak"]
        add("P5a", "fp32 matmul peak (keras.ops.matmul), 1 thread / 2 threads",
            f"{pk['1']['gflops']:.0f} / {pk['2']['gflops']:.0f} GFLOP/s")
        peak2 = pk["2"]["gflops"]
        for name, m in r.get("models", {}).items():
            add("P5b", f"{name}: {m['forward_flops'] / 1e6:.1f} MFLOP/image forward, "
                f"{m['images_per_second']:.0f} img/s training (batch {m['batch']}, {m['threads']} threads)",
                f"{m['achieved_gflops']:.1f} GFLOP/s = {100 * m['achieved_gflops'] / peak2:.0f} % of peak")
    if "parallel" in r:
        p = r["parallel"]
        add("P5c", f"{p['n']} jobs x 1 thread / 1 job x {p['n']} threads, total images/s",
            f"{p['ratio']:.2f} ({p['parallel_total_images_per_second']:.0f} / "
            f"{p['single_images_per_second']:.0f})", "> 1: prefer threads=1",
            None)
    if r.get("study"):
        s = r["study"]
        add("P3", "default study wall time on 2 CPU cores (`snakemake --cores 2`)",
            f"{s['wall_min']:.1f} min", "<= 60 min", s["wall_min"] <= 60)
        add("P3a", "study wall / sum of job benchmark s; trainings' CPU s per wall s",
            f"{fmt(s['ratio'], 3)}; {fmt(s.get('train_cpu_per_wall'))}")
    else:
        add("P3", "default study wall time on 2 CPU cores", "not measured (no finished study)", "<= 60 min")
    add("P3b", "default study on one H200", r.get("gpu_note", "not measured: no GPU lent to this run"),
        "<= 5 min")
    p4 = r.get("p4")
    if p4:
        for row in p4.get("rows", []):
            add("P4", row["what"], row["value"], row.get("goal", ""), row.get("met"))
    if r.get("machine", {}).get("foreign_cpu_cores") is not None:
        add("-", "other processes' CPU use during this run (cores, of "
            f"{r['machine']['cores']}): 0 = undisturbed", f"{r['machine']['foreign_cpu_cores']:.2f}")
    return pd.DataFrame(rows, columns=TABLE_COLUMNS).to_markdown(
        index=False, tablefmt="github", disable_numparse=True)


def write_results(out: Path, r: dict) -> int:
    """Write ``r`` as JSON and its table as Markdown beside it; print the table."""
    r["table"] = table(r)
    out.write_text(json.dumps(r, indent=2, default=str) + "\n")
    out.with_suffix(".md").write_text(f"commit {r['commit'] or 'unknown'}, `{r['command']}`, "
                                      f"{r['started']} to {r['finished']}\n\n{r['table']}\n")
    print(r["table"])
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the code paths")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON output (default bench/results.json, quick: bench/results-quick.json)")
    parser.add_argument("--study", type=Path, default=Path("/tmp/study"),
                        help="a finished default study: DIR/results, DIR.start, DIR.end (epoch s)")
    parser.add_argument("--table-only", action="store_true",
                        help="reprint the table of an earlier --out (rereading bench/p4_results.json)")
    parser.add_argument("--only", nargs="*", default=None,
                        choices=["p1", "p2", "p5", "p3"], help="run only these parts")
    args = parser.parse_args(argv)
    out = args.out or ROOT / "bench" / ("results-quick.json" if args.quick else "results.json")
    parts = set(args.only or ["p1", "p2", "p5", "p3"])
    if args.table_only:
        r = json.loads(out.read_text())
        r["p4"] = read_p4()
        return write_results(out, r)
    cfg = load_config("config/config.yaml")
    threads, batch = cfg["threads"], cfg["defaults"]["batch_size"]
    prov = provenance()
    r: dict = {
        "commit": prov["commit"], "provenance": prov,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick, "machine": {"cpu": platform.processor() or platform.machine(),
                                          "cores": os.cpu_count(), "load_at_start": os.getloadavg()},
    }
    tmp = Path(tempfile.mkdtemp(prefix="cnnopt-bench-"))
    pool = ThreadPoolExecutor(1)
    busy0, wall0 = cpu_busy_s(), time.perf_counter()

    def part(key, fn, *a):
        """Run one measurement; a failure is recorded and the others still run."""
        try:
            r[key] = fn(*a)
        except Exception as exc:  # noqa: BLE001
            log(f"{key} failed: {exc}")
            r.setdefault("errors", {})[key] = str(exc)[-2000:]

    try:
        # quick mode only checks the code paths: the smoke DAG runs beside the workers there
        p2_quick = pool.submit(measure_p2, True, tmp) if args.quick and "p2" in parts else None
        if "p5" in parts:
            log("P5 fp32 matmul peak")
            part("peak", measure_peak, args.quick)
        if "p1" in parts:
            log("P1 step efficiency")
            part("p1", measure_p1, args.quick, threads)
        if "p5" in parts:
            part("models", measure_models, args.quick, threads, batch)
            log("P5 parallel jobs against threads")
            model = TINY_MODEL if args.quick else cfg["defaults"]["model"]
            part("parallel", measure_parallel, args.quick, 2, batch, model, tmp)
        if "p2" in parts:
            part("p2", p2_quick.result if p2_quick else measure_p2, *(() if p2_quick else (False, tmp)))
            if not args.quick:
                log("P2 no-op on the default config (copy of the finished study)")
                part("noop_default", measure_noop_default, args.study, tmp)
        if "p3" in parts:
            part("study", read_study, args.study)
        r["p4"] = read_p4()
    finally:
        pool.shutdown(wait=True)
        shutil.rmtree(tmp, ignore_errors=True)
    r["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    wall, busy = time.perf_counter() - wall0, cpu_busy_s()
    if busy is not None and busy0 is not None:  # CPU that other processes took meanwhile
        r["machine"]["foreign_cpu_cores"] = max(0.0, (busy - busy0) - own_cpu_s()) / wall
    r["machine"]["load_at_end"] = os.getloadavg()
    return write_results(out, r)


if __name__ == "__main__":
    sys.exit(main())
