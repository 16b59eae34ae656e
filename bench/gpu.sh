#!/usr/bin/env bash
# The GPU set of issue 11 in one run, under 5 minutes on an H100/H200-class GPU: dense ==
# message passing on the device, CPU vs device outputs (fp32 / bf16 / fp16 tolerances),
# a resume on the device reaching the same weights, then inference and training images/s
# (CUDA events, warm-up, bf16 autocast, channels_last, torch.compile). Writes one JSON.
#
#   bench/gpu.sh                         # auto device (CUDA when present), full size
#   bench/gpu.sh --device cpu --small    # the same set at small sizes on CPU
#   MGRR_GPU_JSON=out.json bench/gpu.sh  # where the JSON goes (default bench/results/gpu.json)
#
# It installs and downloads nothing: the machine's own torch / torch-geometric and the
# package from this checkout (PYTHONPATH). Extra arguments go to bench/gpu_suite.py
# (--help lists them). Exit status 0 when every check passed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
export CUBLAS_WORKSPACE_CONFIG="${CUBLAS_WORKSPACE_CONFIG:-:4096:8}"  # deterministic resume
exec "${PYTHON:-python3}" bench/gpu_suite.py --out "${MGRR_GPU_JSON:-bench/results/gpu.json}" "$@"
