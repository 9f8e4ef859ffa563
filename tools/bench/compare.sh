#!/usr/bin/env bash
# compare.sh: runs aclip_bench and the PyTorch twin (tools/bench/bench_torch.py) on this machine, in this
# run, with the same thread count, and prints each case with the ratio aclip / PyTorch (< 1: aclip is
# faster). Both run the same OpenBLAS kernels (torch_blas_kernels.sh). The two alternate for a few rounds
# and each side's best median per case counts, so a machine whose speed drifts (a shared VM) treats both
# alike. Needs python3-torch (tools/install_deps.sh --with-reference).
# Usage: tools/bench/compare.sh [build-dir] [threads] [rounds]   (defaults: build-test, all cores, 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
build_dir="${1:-build-test}"
threads="${2:-$(nproc)}"
rounds="${3:-3}"
[[ -x "$build_dir/aclip_bench" ]] || { echo "build first: tools/test.sh $build_dir" >&2; exit 1; }
python=/usr/bin/python3
export OMP_NUM_THREADS="$threads" OPENBLAS_NUM_THREADS="$threads"
source tools/bench/torch_blas_kernels.sh
ours="" theirs=""
for ((round = 1; round <= rounds; ++round)); do
    ours+=$("$build_dir/aclip_bench" --threads "$threads")$'\n'
    [[ $round -eq 1 ]] && torch_blas_kernels "$ours"
    theirs+=$("$python" tools/bench/bench_torch.py --threads "$threads")$'\n'
done
best() {  # each case's least time over the rounds, sorted by case
    grep -v '^#' | awk 'NF == 2 && (!($1 in t) || $2 < t[$1]) {t[$1] = $2} END {for (c in t) print c, t[c]}' | sort
}
echo "$ours" | grep '^#' | head -n 1
echo "$theirs" | grep '^#' | head -n 1
echo "# best of $rounds alternating rounds each"
printf "%-22s %12s %12s %8s\n" case "aclip ms" "torch ms" ratio
join <(echo "$ours" | best) <(echo "$theirs" | best) |
    awk '{printf "%-22s %12.3f %12.3f %8.2f\n", $1, $2, $3, $2 / $3}'
