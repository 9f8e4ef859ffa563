#!/usr/bin/env bash
# compare.sh: runs aclip_bench and the PyTorch twin (tools/bench/bench_torch.py) on this machine, in this
# run, with the same thread count, and prints each case with the ratio aclip / PyTorch (< 1: aclip is
# faster). Both run the same OpenBLAS kernels (torch_blas_kernels.sh). Needs python3-torch
# (tools/install_deps.sh --with-reference).
# Usage: tools/bench/compare.sh [build-dir] [threads]     (defaults: build-test, all cores)
set -euo pipefail
cd "$(dirname "$0")/../.."
build_dir="${1:-build-test}"
threads="${2:-$(nproc)}"
[[ -x "$build_dir/aclip_bench" ]] || { echo "build first: tools/test.sh $build_dir" >&2; exit 1; }
python=/usr/bin/python3
export OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads"
ours=$("$build_dir/aclip_bench" --threads "$threads")
source tools/bench/torch_blas_kernels.sh
torch_blas_kernels "$ours"
theirs=$("$python" tools/bench/bench_torch.py --threads "$threads")
echo "$ours" | grep '^#'
echo "$theirs" | grep '^#'
printf "%-22s %12s %12s %8s\n" case "aclip ms" "torch ms" ratio
join <(echo "$ours" | grep -v '^#' | sort) <(echo "$theirs" | grep -v '^#' | sort) |
    awk '{printf "%-22s %12.3f %12.3f %8.2f\n", $1, $2, $3, $2 / $3}'
