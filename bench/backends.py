"""Training speed per Keras backend on this machine: images/s of bare ``model.fit`` for the
tutorial CNN (the baseline) and the final net, under TensorFlow (without and with XLA
``jit_compile``), JAX and PyTorch, side by side in one run.

    .venv/bin/python bench/backends.py [--threads 2] [--seconds 15]

Needs requirements-jax.txt and requirements-torch.txt (a backend that is not installed is
left out and says so). Each measurement is a fresh ``bench/worker.py throughput`` process
(thread pools and backend are fixed when Keras starts) on random uint8 images, after a
warm-up fit; run it on an otherwise idle machine. Prints a markdown table and writes
``bench/backends.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pandas as pd  # noqa: E402
from common import ROOT, load_config, provenance, run_worker  # noqa: E402

#: (label, KERAS_BACKEND, jit_compile): what each column measures.
SETUPS = [("TensorFlow", "tensorflow", "false"), ("TensorFlow + XLA", "tensorflow", "true"),
          ("JAX", "jax", "auto"), ("PyTorch", "torch", "auto")]


def models() -> dict[str, tuple[dict, int]]:
    """The baseline's and the final run's model spec and batch size (config/config.yaml)."""
    sys.path.insert(0, str(ROOT / "workflow" / "lib"))
    from cnnopt import config as cnnconfig

    cfg = load_config("config/config.yaml")
    return {name: (s["model"], s["batch_size"]) for name, s in (
        ("tutorial CNN (baseline)", cnnconfig.run_spec(cfg, "adam", "baseline", 0)),
        ("final net (Adam: BN + dropout)", cnnconfig.run_spec(cfg, "adam", "final", 0)))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args(argv)
    rows = []
    for model, (spec, batch) in models().items():
        for label, backend, jit in SETUPS:
            module = "tensorflow" if backend == "tensorflow" else backend
            if importlib.util.find_spec(module) is None:
                print(f"{label}: {module} is not installed, left out", file=sys.stderr)
                continue
            result = run_worker(["throughput", "--threads", str(args.threads), "--model",
                                 json.dumps(spec), "--batch", str(batch), "--seconds",
                                 str(args.seconds), "--start-at", str(time.time()),
                                 "--jit-compile", jit], env={"KERAS_BACKEND": backend})
            rows.append({"model": model, "setup": label, "backend": result["backend"],
                         "jit_compile": result["jit_compile"], "batch": batch,
                         "images_per_second": result["images_per_second"]})
            print(f"{model:32s} {label:18s} {result['images_per_second']:8.0f} img/s", file=sys.stderr)
    frame = pd.DataFrame(rows)
    table = frame.pivot(index="model", columns="setup", values="images_per_second")
    table = table[[s for s, *_ in SETUPS if s in table.columns]].round(0)
    out = {"provenance": provenance(), "threads": args.threads, "seconds": args.seconds,
           "rows": rows, "markdown": table.to_markdown()}
    (ROOT / "bench" / "backends.json").write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(table.to_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
