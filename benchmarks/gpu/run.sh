#!/usr/bin/env bash
# Runs ON a lent GPU machine (see prepare.sh): installs the carried wheels and GL loaders, points
# EGL at NVIDIA's driver and takes issue 3's GPU numbers (benchmarks/render_gpu.py: 200k
# Gaussians at 2x1024 stereo through GL and gsplat, MPI stereo, reference checks). Results go to
# $OUT (the device tool's folder) or ./gpu_out. Extra arguments go to the benchmark.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-gpu_out}; mkdir -p "$out"
PY=python3
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
  if [ -d .gl ]; then for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; fi
  vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  [ -f "$vendor" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$vendor
  # gsplat compiles its CUDA kernels at first use: for this GPU's architecture only, all cores.
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1)
  export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$cap} MAX_JOBS=${MAX_JOBS:-$(nproc)}
  if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
elif [ -x .venv/bin/python ]; then
  PY=.venv/bin/python  # a machine without NVIDIA's driver: the project's own environment
fi
export PYTHONUNBUFFERED=1
"$PY" -m benchmarks.render_gpu --json "$out/render_gpu.json" "$@" 2>&1 | tee "$out/render_gpu.txt"
