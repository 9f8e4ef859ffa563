#!/usr/bin/env bash
# compare_data.sh: aclip's input pipeline against PIL + torchvision on the same shard of 500x375 JPEGs,
# one thread each, in the same run. Needs python3-torchvision and python3-pil (install_deps.sh --with-reference).
# Usage: tools/bench/compare_data.sh [build-dir] [samples]   (defaults: build-test, 200)
set -euo pipefail
cd "$(dirname "$0")/../.."
build_dir="${1:-build-test}"
samples="${2:-200}"
shard=$(mktemp -d)/bench.tar
export OMP_NUM_THREADS=1
ours=$("$build_dir/aclip_bench_data" --shard "$shard" --make "$samples")
theirs=$(/usr/bin/python3 tools/bench/bench_data_torch.py "$shard")
echo "$ours"
echo "$theirs"
a=$(echo "$ours" | awk '{print $2}')
t=$(echo "$theirs" | awk '{print $2}')
awk -v a="$a" -v t="$t" 'BEGIN {printf "ratio aclip / torchvision (throughput): %.2f\n", a / t}'
rm -rf "$(dirname "$shard")"
