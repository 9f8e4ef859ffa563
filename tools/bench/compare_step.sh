#!/usr/bin/env bash
# compare_step.sh: one A-CLIP training step of the quickstart model, aclip against the PyTorch reference
# (tools/reference/), same machine, same run, same threads, same OpenBLAS kernels (torch_blas_kernels.sh).
# The two alternate for a few rounds and each side's best median counts (a shared VM's speed drifts).
# Needs python3-torch.
# Usage: tools/bench/compare_step.sh [build-dir] [threads] [rounds]   (defaults: build-test, all cores, 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
build_dir="${1:-build-test}"
rounds="${3:-3}"
export OMP_NUM_THREADS="${2:-$(nproc)}" OPENBLAS_NUM_THREADS="${2:-$(nproc)}"
source tools/bench/torch_blas_kernels.sh
ours_ms="" theirs_ms=""
for ((round = 1; round <= rounds; ++round)); do
    ours=$("$build_dir/aclip_bench_step")
    [[ $round -eq 1 ]] && torch_blas_kernels "$ours"
    theirs=$(/usr/bin/python3 tools/bench/bench_step_torch.py)
    echo "round $round: $ours"
    echo "round $round: $theirs"
    ours_ms+="$(echo "$ours" | awk '{print $2}') " theirs_ms+="$(echo "$theirs" | awk '{print $2}') "
done
least() { tr ' ' '\n' <<< "$1" | grep . | sort -g | head -n 1; }
best_ours=$(least "$ours_ms") best_theirs=$(least "$theirs_ms")
echo "aclip $best_ours ms/step, torch $best_theirs ms/step (best of $rounds alternating rounds each)"
awk -v a="$best_ours" -v t="$best_theirs" 'BEGIN {printf "ratio aclip / torch (time per step): %.2f\n", a / t}'
