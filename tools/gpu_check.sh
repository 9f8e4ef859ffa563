#!/usr/bin/env bash
# gpu_check.sh: the one prepared check of the CUDA backend on a GPU machine (one H100 or H200 with the CUDA
# toolkit, CMake, Ninja and PyTorch, but none of Debian's -dev packages and no network). In under six
# minutes it builds the engine, the models and their tests (ACLIP_ENGINE_ONLY), runs every test with
# --require-gpu (so a skipped GPU case fails), runs the kernel benchmarks and their PyTorch twin on the
# same card and the ViT-B/16 A-CLIP training step (samples/s, MFU; again with the tensor-core attention
# off), and writes one report.
#
#   tools/gpu_check.sh --stage         here, before sending the tree: copies the header-only test framework
#                                      (doctest) and the commit id into .deps/ (ignored; carry it along)
#   tools/gpu_check.sh [REPORT]        on the GPU machine; REPORT defaults to gpu_report.md
#   tools/gpu_check.sh --dry-run       here: the same build and tests without a GPU (GPU cases skip),
#                                      to check the script and the engine-only build before spending GPU time
#   tools/gpu_check.sh --quick REPORT  on the GPU machine, for a lease with under eight minutes left: the
#                                      tests and the training step with its kernel profile only (about
#                                      four and a half minutes on an H200)
#
# With the device tool: run `tools/gpu_check.sh --stage`, then on the machine, carrying .deps:
#   tools/gpu_check.sh $OUT/gpu_report.md
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--stage" ]]; then
    mkdir -p .deps/doctest
    header=$(find /usr/include -name doctest.h -path '*doctest/doctest.h' | head -1)
    [[ -n "$header" ]] || { echo "doctest.h not found: run tools/install_deps.sh" >&2; exit 1; }
    cp "$header" .deps/doctest/doctest.h
    if git rev-parse HEAD > .deps/commit 2>/dev/null; then
        git diff --quiet HEAD || echo "(with uncommitted changes)" >> .deps/commit
    else
        echo unknown > .deps/commit
    fi
    echo "staged .deps/ (doctest, commit $(head -1 .deps/commit))"
    exit 0
fi

dry_run=0
quick=0
if [[ "${1:-}" == "--dry-run" ]]; then
    dry_run=1
    shift
elif [[ "${1:-}" == "--quick" ]]; then
    quick=1
    shift
fi
report="${1:-gpu_report.md}"
build=build-gpu
jobs=$(nproc 2>/dev/null || echo 4)
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
[[ -f .deps/doctest/doctest.h ]] || { echo "run tools/gpu_check.sh --stage first (here, not on the GPU machine)" >&2; exit 1; }

log_dir=$(dirname "$report")
mkdir -p "$log_dir"
{
    echo "# aclip GPU check"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    # In a git checkout (a dry run here) its HEAD; on the GPU machine, whose copy has no .git, the staged id.
    if head=$(git rev-parse HEAD 2>/dev/null); then
        git diff --quiet HEAD 2>/dev/null && echo "- commit: $head" || echo "- commit: $head (with uncommitted changes)"
    else
        echo "- commit: $(tr '\n' ' ' < .deps/commit)"
    fi
    echo "- device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo none)"
    echo "- nvcc: $(nvcc --version 2>/dev/null | tail -1 || echo none)"
} > "$report"

status=0
echo "== configure and build ($jobs jobs)"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cuda_flag=ON
[[ $dry_run -eq 1 ]] && cuda_flag=AUTO
# NCCL: beside the toolkit, or in pip's nvidia-nccl package of the machine's PyTorch
if [[ -z "${NCCL_ROOT:-}" ]]; then
    NCCL_ROOT=$(python3 -c "import nvidia.nccl as n; print(list(n.__path__)[0])" 2>/dev/null || true)
    export NCCL_ROOT
fi
if ! cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DACLIP_ENGINE_ONLY=ON \
        -DACLIP_CUDA=$cuda_flag -DCMAKE_CUDA_ARCHITECTURES=90 -DDOCTEST_INCLUDE_DIR="$PWD/.deps" \
        > "$log_dir/gpu_configure.log" 2>&1; then
    tail -30 "$log_dir/gpu_configure.log"
    echo "- configure: FAILED (see gpu_configure.log)" >> "$report"
    exit 1
fi
targets=()
[[ $quick -eq 1 ]] && targets=(--target aclip_tests aclip_bench_step_cuda)
if ! cmake --build "$build" -j "$jobs" "${targets[@]}" > "$log_dir/gpu_build.log" 2>&1; then
    grep -E "error|Error" "$log_dir/gpu_build.log" | head -30
    echo "- build: FAILED after $(elapsed) s (see gpu_build.log)" >> "$report"
    exit 1
fi
echo "- build: ok in $(elapsed) s" >> "$report"

echo "== tests (--require-gpu) at $(elapsed) s"
require=(--require-gpu)
[[ $dry_run -eq 1 ]] && require=()
timeout 240 "$build/tests/aclip_tests" "${require[@]}" > "$log_dir/gpu_tests.log" 2>&1
test_status=$?
summary=$(grep -E "^\[doctest\] (test cases|assertions)" "$log_dir/gpu_tests.log" | tr -s ' ')
{
    echo "- tests (exit $test_status) at $(elapsed) s:"
    echo '```'
    echo "$summary"
    grep -E "GPU test cases skipped" "$log_dir/gpu_tests.log"
    grep -E "ERROR|FATAL|relative error|differ" "$log_dir/gpu_tests.log" | head -40
    echo '```'
} >> "$report"
[[ $test_status -eq 0 ]] || status=1
tail -5 "$log_dir/gpu_tests.log"

# A CUDA error such as an illegal address is sticky: every later launch of the process fails too. After
# a failure, each GPU test case runs again in a process of its own, so the report names the ones that
# fail by themselves (doctest splits filters at commas: a comma in a name becomes the wildcard '?').
if [[ $test_status -ne 0 && $dry_run -eq 0 && $quick -eq 0 ]]; then
    echo "== each GPU test case alone at $(elapsed) s"
    echo "- each GPU test case in a process of its own (exit status, name; logs in gpu_tests_alone.log):" >> "$report"
    : > "$log_dir/gpu_tests_alone.log"
    "$build/tests/aclip_tests" --list-test-cases 2>/dev/null | grep -E '^(GPU:|parity:)' |
        while IFS= read -r name; do
            echo "=== $name" >> "$log_dir/gpu_tests_alone.log"
            timeout 120 "$build/tests/aclip_tests" --require-gpu -tc="${name//,/?}" \
                >> "$log_dir/gpu_tests_alone.log" 2>&1
            echo "  - $? $name" >> "$report"
        done
    # the parity cases after one that broke the context, in fresh processes (at most four breaks)
    skip=""
    for _ in 1 2 3 4; do
        broken=$(grep -h '^PARITY_CONTEXT_BROKEN_AT ' "$log_dir/gpu_tests_alone.log" | tail -1 | cut -d' ' -f2-)
        [[ -n "$broken" && "|$skip|" != *"|$broken|"* ]] || break
        skip="${skip:+$skip|}$broken"
        echo "=== parity without: $skip" >> "$log_dir/gpu_tests_alone.log"
        ACLIP_PARITY_SKIP="$skip" timeout 120 "$build/tests/aclip_tests" --require-gpu -tc="parity:*" \
            >> "$log_dir/gpu_tests_alone.log" 2>&1
        echo "  - $? parity without: $skip" >> "$report"
    done
fi

if [[ $dry_run -eq 0 ]]; then
    echo "== benchmarks at $(elapsed) s"
    {
        if [[ $quick -eq 0 ]]; then
            echo "- benchmarks (tools/bench/compare_cuda.sh $build, same card, same run):"
            echo '```'
            timeout 150 tools/bench/compare_cuda.sh "$build" 2>&1
            echo '```'
        fi
        echo "- A-CLIP training step on this GPU (aclip_bench_step_cuda, random 8-bit views copied from"
        echo "  page-locked memory each step as the trainer's), then 2 steps under the kernel profile (where"
        echo "  the step's time goes; its 'memcpy host to device' row is the copies):"
        echo '```'
        timeout 150 "$build/aclip_bench_step_cuda" --batch 256 --steps 6 --precision bf16 --profile 2 2>&1 |
            grep -v '^step [0-4]:'  # warm-up steps out, any error kept
        echo '```'
        if [[ $quick -eq 0 ]]; then
            echo "- the same step with the tensor-core attention off (ACLIP_TENSOR_CORE_ATTENTION=0: the composed"
            echo "  attention), for their share of the step, and a figure should their parity case fail:"
            echo '```'
            ACLIP_TENSOR_CORE_ATTENTION=0 timeout 120 "$build/aclip_bench_step_cuda" --batch 256 --steps 6 \
                --precision bf16 2>&1 | grep -v '^step [0-4]:'  # warm-up steps out, any error kept
            echo '```'
            if (( $(elapsed) < 420 )); then
                echo "- the same step with gradient checkpointing (train.grad_checkpointing: time against memory):"
                echo '```'
                timeout 120 "$build/aclip_bench_step_cuda" --batch 256 --steps 6 --precision bf16 \
                    --grad-checkpointing 2>&1 | grep -v '^step [0-4]:'
                echo '```'
            fi
        fi
    } >> "$report"
fi
echo "- total: $(elapsed) s" >> "$report"
cat "$report"
exit $status
