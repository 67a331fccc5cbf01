#!/usr/bin/env bash
# Fill bench/wheels/ (ignored by git) with what bench/device_check.sh installs on a GPU machine
# that has JAX with CUDA, Python 3.12 and no internet: Keras, Snakemake, statsmodels and their
# dependencies as Python 3.12 wheels (sdist-only packages are built here). The scientific stack
# (numpy, scipy, pandas, matplotlib, pillow) is left out: the device has it, and with it the
# wheels would not fit the 64 MiB a device call carries (the du below says). Run here, where PyPI answers.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/wheels
mkdir -p "$out"
pin() { grep -E "^$1==" requirements.txt; }
want=("$(pin keras)" "$(pin snakemake)" "$(pin jinja2)" "$(pin pooch)" "$(pin pyyaml)" "$(pin jsonschema)" "$(pin statsmodels)")
pip=(.venv/bin/pip download --quiet --only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64
     --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform any
     --find-links "$out" -d "$out")
for _ in 1 2 3 4 5 6; do  # build a wheel for each dependency PyPI has only as an sdist, then retry
  missing=$("${pip[@]}" "${want[@]}" 2>&1 | sed -nE 's/.*satisfies the requirement ([^ ]+) \(from.*/\1/p' | head -1) || true
  [ -z "$missing" ] && break
  .venv/bin/pip wheel --quiet --no-deps -w "$out" "$missing"
done
rm -f "$out"/{numpy,scipy,pandas,matplotlib,pillow,fonttools,kiwisolver,contourpy,cycler,pyparsing,python_dateutil,six,packaging}-*.whl
# ... and what the lent machines' image holds (/work/.library/device/KINDS.md): jax's own
# ml_dtypes must stay, the rest would only weigh on the 64 MiB (bench/device_check.sh installs
# these wheels with --no-deps beside the image's packages)
rm -f "$out"/{h5py,pygments,pyyaml,narwhals,ml_dtypes,tzdata,charset_normalizer,wrapt,psutil,absl_py,urllib3,jinja2,certifi,markdown_it_py,requests,idna,attrs,typing_extensions,tabulate,mdurl,markupsafe,formulaic,interface_meta,rich}-*.whl
du -sh "$out"
