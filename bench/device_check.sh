#!/usr/bin/env bash
# The GPU check in one command, for a machine with JAX (CUDA), Python 3.12 and no internet:
# installs the carried wheels (bench/device_wheels.sh fills bench/wheels/ beforehand), runs the
# smoke DAG on KERAS_BACKEND=jax with --resources gpu=1 on the CIFAR-10 mirror, and prints the
# device each training used, its images/s and the wall time of the DAG.
#   bench/device_check.sh [DATA] [CONFIG]
#   DATA    data archive (default ../shared/datasets/cifar10-jpeg.tar.gz, else the canonical URL)
#   CONFIG  config file layered over config/config.yaml (default config/smoke.yaml)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/datasets/cifar10-jpeg.tar.gz}
cfg=${2:-config/smoke.yaml}
py=${PYTHON:-python3}
# ALLOW_CPU=1 runs the same check on a machine without a GPU (to try the script itself)
"$py" -c "import jax; d = jax.devices(); print('jax', jax.__version__, d); assert d[0].platform == 'gpu' or '${ALLOW_CPU:-}', 'no GPU: jax sees ' + str(d)"
need=()
for spec in $(grep -E "^(keras|snakemake|jinja2|pooch|pyyaml|jsonschema|statsmodels|numpy|pandas|scipy|matplotlib|pillow)==" requirements.txt); do
  module=${spec%%==*}; module=${module/pyyaml/yaml}; module=${module/pillow/PIL}
  "$py" -c "import $module" 2>/dev/null || need+=("$spec")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing from bench/wheels: ${need[*]}"
  "$py" -m pip install --quiet --no-index --find-links bench/wheels "${need[@]}"
fi
work=$(mktemp -d)
cp -r Snakefile workflow config report envs "$work"/
[ -f "$data" ] && data_arg=("--config" "data_source=$(realpath "$data")") || data_arg=()
start=$(date +%s.%N)
(cd "$work" && KERAS_BACKEND=jax "$py" -m snakemake --cores 4 --resources gpu=1 \
   --configfile "$cfg" "${data_arg[@]}" > "$work/snakemake.log" 2>&1) \
  || { tail -40 "$work/snakemake.log"; exit 1; }
end=$(date +%s.%N)
"$py" - "$work" <<'PY'
import json, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1], "results/runs").glob("*/metrics.json")):
    m = json.loads(path.read_text())
    print(f"{m['run_id']:34s} {m['backend']:6s} {m['device']:28s} {m['images_per_second'] or 0:9.0f} img/s "
          f"{m['train_seconds']:7.1f} s")
PY
echo "DAG wall time: $("$py" -c "print(round($end - $start, 1))") s (results in $work)"
