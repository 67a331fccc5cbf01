#!/usr/bin/env bash
# A study on a GPU machine that has JAX with CUDA, Python 3.12 and no internet, in one command:
# installs the carried wheels (bench/device_wheels.sh fills bench/wheels/ beforehand) into a
# folder of their own, runs the DAG on KERAS_BACKEND=jax with its trainings sharing the GPU,
# and prints the device each training used, its images/s and the wall time of the DAG.
#   bench/device_check.sh [DATA] [CONFIG]
#   DATA    data archive (default ../shared/datasets/cifar10-jpeg.tar.gz, else the canonical URL)
#   CONFIG  config file layered over config/config.yaml (default config/smoke.yaml)
# Environment:
#   SLOTS=k       trainings at once on each GPU (default 1): small models leave a large GPU
#                 mostly idle, so k of them share it (CNNOPT_GPU_DEVICES lists each GPU k times)
#   LIMIT=s       stop the DAG after s seconds (default: none); what finished stays
#   RESULTS=path  also write results/ (without model files and training states) as a tar.gz there
#   ALLOW_CPU=1   run the same check on a machine without a GPU (to try the script itself)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/datasets/cifar10-jpeg.tar.gz}
cfg=${2:-config/smoke.yaml}
slots=${SLOTS:-1}
py=${PYTHON:-python3}
"$py" -c "import jax; d = jax.devices(); print('jax', jax.__version__, d); assert d[0].platform == 'gpu' or '${ALLOW_CPU:-}', 'no GPU: jax sees ' + str(d)"
site=$(mktemp -d)
if compgen -G "bench/wheels/*.whl" > /dev/null; then  # --no-deps: the wheels were gathered together
  "$py" -m pip install --quiet --no-index --no-deps --no-compile --target "$site" bench/wheels/*.whl
fi
export PYTHONPATH="$PWD/workflow/lib:$site${PYTHONPATH:+:$PYTHONPATH}" KERAS_BACKEND=jax
"$py" -c "import keras, snakemake, statsmodels, cnnopt; print('keras', keras.__version__, keras.backend.backend(), '| snakemake', snakemake.__version__)"
gpus=$(nvidia-smi -L 2>/dev/null | sed -nE 's/^GPU ([0-9]+):.*/\1/p' | tr '\n' ' ' || true)
devices=""
for gpu in $gpus; do for _ in $(seq "$slots"); do devices+="${devices:+,}$gpu"; done; done
n_gpus=$(echo "$gpus" | wc -w)
export CNNOPT_GPU_DEVICES="$devices"
work=$(mktemp -d)
cp -r Snakefile workflow config report envs "$work"/
[ -f "$data" ] && data_arg=("--config" "data_source=$(realpath "$data")") || data_arg=()
echo "GPUs: ${gpus:-none}; trainings at once per GPU: $slots (CNNOPT_GPU_DEVICES=$devices)"
start=$(date +%s.%N)
rc=0
(cd "$work" && ${LIMIT:+timeout "$LIMIT"} "$py" -m snakemake --cores "$(nproc)" \
   --resources gpu=$((n_gpus * slots)) --keep-going \
   --configfile "$cfg" "${data_arg[@]}" > "$work/snakemake.log" 2>&1) || rc=$?
end=$(date +%s.%N)
[ "$rc" -ne 0 ] && { echo "snakemake exited $rc; the end of its log:"; tail -40 "$work/snakemake.log"; }
"$py" - "$work" <<'PY'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1], "results/runs").glob("*/metrics.json")):
    m = json.loads(path.read_text())
    print(f"{m['run_id']:40s} {m['backend']:4s} {m['device'][:24]:24s} {m['images_per_second'] or 0:8.0f} img/s "
          f"{m['train_seconds']:7.1f} s  val {m['final_val_accuracy']:.4f}")
PY
echo "DAG wall time: $("$py" -c "print(round($end - $start, 1))") s (results in $work)"
if [ -n "${RESULTS:-}" ]; then
  cp "$work/snakemake.log" "$work/results/" 2>/dev/null || true
  tar -C "$work" -czf "$RESULTS" --exclude='*.keras' --exclude='results/runs/*/state' \
    --exclude='results/checkpoints' --exclude='results/data/*.npz' --exclude='results/tensorboard' results
  echo "results: $RESULTS ($(du -h "$RESULTS" | cut -f1))"
fi
exit "$rc"
