#!/usr/bin/env bash
# compare_cuda.sh: runs aclip_bench_cuda and its PyTorch twin on this GPU, in this run, and prints each
# case with both times, the ratio aclip / PyTorch (< 1: aclip is faster), and aclip's rate: TFLOP/s for
# GEMMs and attention, GB/s and the share of the measured copy bandwidth for memory-bound kernels.
# Usage: tools/bench/compare_cuda.sh [build-dir] [--quick]
set -euo pipefail
cd "$(dirname "$0")/../.."
build_dir="${1:-build-gpu}"
shift || true
python=${PYTHON:-python3}
ours=$("$build_dir/aclip_bench_cuda" "$@")
theirs=$("$python" tools/bench/bench_cuda_torch.py "$@")
echo "$ours" | grep '^#'
echo "$theirs" | grep '^#'
printf "%-20s %10s %10s %7s %12s %9s\n" case "aclip ms" "torch ms" ratio "aclip rate" "of peak"
join <(echo "$ours" | grep -v '^#' | sort) <(echo "$theirs" | grep -v '^#' | sort) |
    awk 'BEGIN { peak_bw = 0 }
         { name[NR] = $1; a[NR] = $2; t[NR] = $5; fl[NR] = $3; by[NR] = $4
           if ($1 == "copy_1GiB") peak_bw = $4 / ($2 * 1e-3) }
         END {
           for (i = 1; i <= NR; i++) {
             if (fl[i] > 0) { rate = sprintf("%.0f TFLOP/s", fl[i] / (a[i] * 1e-3) / 1e12); share = sprintf("%.0f%%", 100 * fl[i] / (a[i] * 1e-3) / 989.4e12) }
             else { bw = by[i] / (a[i] * 1e-3); rate = sprintf("%.0f GB/s", bw / 1e9); share = peak_bw > 0 ? sprintf("%.0f%%", 100 * bw / peak_bw) : "-" }
             printf "%-20s %10.3f %10.3f %7.2f %12s %9s\n", name[i], a[i], t[i], a[i] / t[i], rate, share
           }
         }'
echo "# of peak: GEMMs and attention against 989.4 TFLOP/s (dense bf16, H100 SXM / H200); memory-bound"
echo "# kernels against this run's copy_1GiB bandwidth (bytes read + written)"
