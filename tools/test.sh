#!/usr/bin/env bash
# test.sh: installs missing packages (tools/install_deps.sh), configures, builds and runs every test of aclip. Warnings are errors. The CUDA backend is
# compiled when nvcc is present (ACLIP_CUDA=AUTO) and its tests skip without a GPU.
# Usage: tools/test.sh [build-dir]    (default: build-test). The last line is "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
build_dir="${1:-build-test}"
jobs=$(nproc 2>/dev/null || echo 2)
tools/install_deps.sh || { echo "0 passed, 1 failed"; exit 1; }

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if ! cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DACLIP_WERROR=ON -DACLIP_CUDA=AUTO \
        > "$build_dir.configure.log" 2>&1; then
    cat "$build_dir.configure.log"
    echo "configure failed"
    echo "0 passed, 1 failed"
    exit 1
fi
grep "aclip:" "$build_dir.configure.log"
if ! cmake --build "$build_dir" -j "$jobs"; then
    echo "build failed"
    echo "0 passed, 1 failed"
    exit 1
fi

log="$build_dir/test.log"
(cd "$build_dir" && ctest --output-on-failure -V -j "$jobs") > "$log" 2>&1
ctest_status=$?
grep -E "^\s*[0-9]+/[0-9]+ Test|tests passed|tests failed|ERROR|FAILED" "$log" | sed 's/^[0-9]*: //' | head -60

# Sum the doctest test-case counts over every tier.
read -r passed failed < <(grep -o "test cases: *[0-9]* | *[0-9]* passed | *[0-9]* failed" "$log" |
    awk -F'|' '{gsub(/[^0-9]/, "", $2); gsub(/[^0-9]/, "", $3); p += $2; f += $3} END {print p+0, f+0}')
if [[ $ctest_status -ne 0 && $failed -eq 0 ]]; then
    failed=1  # a tier crashed or timed out without a doctest summary
    echo "ctest failed; see $log"
fi
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
