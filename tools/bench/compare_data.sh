#!/usr/bin/env bash
# compare_data.sh: aclip's input pipeline against PIL + torchvision on the same shard of 500x375 JPEGs,
# one thread each. The two alternate for three rounds of three passes each and the best pass of each side
# counts, so a machine whose speed drifts (a shared VM) treats both alike.
# Needs python3-torchvision and python3-pil (install_deps.sh --with-reference).
# Usage: tools/bench/compare_data.sh [build-dir] [samples]   (defaults: build-test, 200)
set -euo pipefail
cd "$(dirname "$0")/../.."
build_dir="${1:-build-test}"
samples="${2:-200}"
dir=$(mktemp -d)
shard="$dir/bench.tar"
trap 'rm -rf "$dir"' EXIT
export OMP_NUM_THREADS=1
"$build_dir/aclip_bench_data" --shard "$shard" --make "$samples" --repeats 1 > /dev/null
best_ours=0
best_theirs=0
for round in 1 2 3; do
    ours=$("$build_dir/aclip_bench_data" --shard "$shard" --repeats 3 | awk '{print $2}')
    theirs=$(/usr/bin/python3 tools/bench/bench_data_torch.py "$shard" | awk '{print $2}')
    echo "round $round: aclip $ours, torchvision $theirs samples/s/core"
    best_ours=$(awk -v a="$best_ours" -v b="$ours" 'BEGIN {print (b > a) ? b : a}')
    best_theirs=$(awk -v a="$best_theirs" -v b="$theirs" 'BEGIN {print (b > a) ? b : a}')
done
echo "aclip $best_ours samples/s/core, torchvision $best_theirs samples/s/core ($samples samples, best of 9 passes each)"
awk -v a="$best_ours" -v t="$best_theirs" 'BEGIN {printf "ratio aclip / torchvision (throughput): %.2f\n", a / t}'
