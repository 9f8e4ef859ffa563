#!/usr/bin/env bash
# test.sh: installs missing packages (tools/install_deps.sh), configures, builds and runs every test of
# aclip, then runs the test binary again from an ASan + UBSan build and, for the threaded code, from a TSan
# build. Warnings are errors. The CUDA backend is compiled when nvcc is present (ACLIP_CUDA=AUTO) and its
# tests skip without a GPU.
# Usage: tools/test.sh [build-dir]    (default: build-test). The last line is "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
build_dir="${1:-build-test}"
jobs=$(nproc 2>/dev/null || echo 2)
tools/install_deps.sh || { echo "0 passed, 1 failed"; exit 1; }

mkdir -p "$build_dir" "$build_dir-asan"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if ! cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DACLIP_WERROR=ON -DACLIP_CUDA=AUTO \
        > "$build_dir/configure.log" 2>&1; then
    cat "$build_dir/configure.log"
    echo "configure failed"
    echo "0 passed, 1 failed"
    exit 1
fi
grep "aclip:" "$build_dir/configure.log"
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
count() {
    grep -o "test cases: *[0-9]* | *[0-9]* passed | *[0-9]* failed" "$1" |
        awk -F'|' '{gsub(/[^0-9]/, "", $2); gsub(/[^0-9]/, "", $3); p += $2; f += $3} END {print p+0, f+0}'
}
read -r passed failed < <(count "$log")
if [[ $ctest_status -ne 0 && $failed -eq 0 ]]; then
    failed=1  # a tier crashed, timed out or the format check failed, without a doctest failure
    echo "ctest failed; see $log"
fi

# The same tests again under AddressSanitizer and UndefinedBehaviorSanitizer (CPU-only debug build):
# out-of-bounds accesses, leaks (an autograd cycle would be one) and undefined behaviour fail the run.
asan_dir="$build_dir-asan"
asan_log="$asan_dir/test.log"
if cmake -S . -B "$asan_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Debug -DACLIP_SANITIZE=ON -DACLIP_CUDA=OFF \
        -DACLIP_WERROR=ON > "$asan_dir/configure.log" 2>&1 && cmake --build "$asan_dir" -j "$jobs" --target aclip_tests \
        aclip_train > "$asan_dir/build.log" 2>&1; then
    # aclip_train for the SIGTERM test, instrumented too; the mpirun test ran above (MPI under the
    # sanitizers reports its own allocations)
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$asan_dir/tests/aclip_tests" -tce='*processes*' \
        > "$asan_log" 2>&1
    asan_status=$?
    read -r asan_passed asan_failed < <(count "$asan_log")
    [[ $asan_status -ne 0 && $asan_failed -eq 0 ]] && asan_failed=1
    echo "sanitizer build (ASan + UBSan): $asan_passed passed, $asan_failed failed"
    [[ $asan_failed -ne 0 ]] && grep -E "ERROR|runtime error|SUMMARY" "$asan_log" | head -20
else
    echo "sanitizer build failed; see $asan_dir/build.log"
    asan_passed=0 asan_failed=1
fi

# The threaded code (the loader's workers, evaluation's decoding threads, thread ranks, emulated warps)
# under ThreadSanitizer: a data race fails the run. OpenMP's pool runs one thread (libgomp is not
# instrumented); the tests that start other processes ran above.
tsan_dir="$build_dir-tsan"
mkdir -p "$tsan_dir"
tsan_log="$tsan_dir/test.log"
if cmake -S . -B "$tsan_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DACLIP_SANITIZE_THREADS=ON \
        -DACLIP_CUDA=OFF -DACLIP_WERROR=ON > "$tsan_dir/configure.log" 2>&1 &&
        cmake --build "$tsan_dir" -j "$jobs" --target aclip_tests > "$tsan_dir/build.log" 2>&1; then
    OMP_NUM_THREADS=1 TSAN_OPTIONS=halt_on_error=1 "$tsan_dir/tests/aclip_tests" -ts=unit,dist,data,train,cuda \
        -tce='*processes*,*SIGTERM*' > "$tsan_log" 2>&1
    tsan_status=$?
    read -r tsan_passed tsan_failed < <(count "$tsan_log")
    [[ $tsan_status -ne 0 && $tsan_failed -eq 0 ]] && tsan_failed=1
    echo "sanitizer build (TSan): $tsan_passed passed, $tsan_failed failed"
    [[ $tsan_failed -ne 0 ]] && grep -E -A8 "WARNING: ThreadSanitizer|ERROR" "$tsan_log" | head -30
else
    echo "thread sanitizer build failed; see $tsan_dir/build.log"
    tsan_passed=0 tsan_failed=1
fi

passed=$((passed + asan_passed + tsan_passed))
failed=$((failed + asan_failed + tsan_failed))
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
