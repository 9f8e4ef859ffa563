#!/usr/bin/env bash
# compare_step.sh: one A-CLIP training step of the quickstart model, aclip against the PyTorch reference
# (tools/reference/), same machine, same run, same threads, same OpenBLAS kernels (torch_blas_kernels.sh).
# Needs python3-torch.
# Usage: tools/bench/compare_step.sh [build-dir] [threads]   (defaults: build-test, all cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
build_dir="${1:-build-test}"
export OMP_NUM_THREADS="${2:-$(nproc)}" OPENBLAS_NUM_THREADS="${2:-$(nproc)}"
ours=$("$build_dir/aclip_bench_step")
source tools/bench/torch_blas_kernels.sh
torch_blas_kernels "$ours"
theirs=$(/usr/bin/python3 tools/bench/bench_step_torch.py)
echo "$ours"
echo "$theirs"
awk -v a="$(echo "$ours" | awk '{print $2}')" -v t="$(echo "$theirs" | awk '{print $2}')" \
    'BEGIN {printf "ratio aclip / torch (time per step): %.2f\n", a / t}'
