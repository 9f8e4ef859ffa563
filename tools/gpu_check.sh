#!/usr/bin/env bash
# gpu_check.sh: the one prepared check of the CUDA backend on a GPU machine (one H100 or H200 with the CUDA
# toolkit, CMake, Ninja and PyTorch, but none of Debian's -dev packages and no network). In about six
# minutes it builds everything against the data libraries staged from this machine, runs the engine's,
# models' and GPU tests with --require-gpu (so a skipped GPU case fails), the ViT-B/16 A-CLIP training step
# (samples/s, MFU, its kernel profile), `aclip_train` on the quickstart recipe on the GPU, the kernel
# benchmarks and their PyTorch twin on the same card, Nsight Compute's counters for the memory-bound and
# attention kernels where the machine allows them, and writes one report.
#
#   tools/gpu_check.sh --stage         here, before sending the tree: copies into .deps/ (ignored; carry it
#                                      along) the headers and shared libraries of the data libraries (ICU,
#                                      libjpeg, zlib, libzip and what they need), stb, doctest and the commit id
#   tools/gpu_check.sh [REPORT]        on the GPU machine; REPORT defaults to gpu_report.md
#   tools/gpu_check.sh --dry-run       here: the same build (the data libraries from the staged prefix
#                                      alone: CMake's searches ignore /usr),
#                                      the tests (GPU cases skip) and a short CPU run of the trainer section,
#                                      to check the script and the build before spending GPU time
#   tools/gpu_check.sh --quick REPORT  on the GPU machine, for a lease with under eight minutes left: the
#                                      tests, the training step with its kernel profile and aclip_train only
#   tools/gpu_check.sh --kernels REPORT  on the GPU machine, after kernel changes (about four minutes): the
#                                      tests, the training step with its kernel profile and the benchmarks
#
# With the device tool: run `tools/gpu_check.sh --stage`, then on the machine, carrying .deps:
#   tools/gpu_check.sh $OUT/gpu_report.md
set -uo pipefail
cd "$(dirname "$0")/.."
sysroot=.deps/sysroot

# The data libraries as a prefix (include/, lib/) that CMake searches first: the -dev packages' headers,
# and each library's shared object under its soname with what it needs beyond the C and C++ runtimes.
stage() {
    rm -rf .deps
    mkdir -p "$sysroot/include" "$sysroot/lib"
    local packages=(libicu-dev libjpeg62-turbo-dev zlib1g-dev libzip-dev libstb-dev doctest-dev)
    local header
    for header in $(dpkg -L "${packages[@]}" | grep -E '^/usr/include/.*\.(h|hpp)$'); do
        local relative=${header#/usr/include/}
        relative=${relative#x86_64-linux-gnu/}
        mkdir -p "$sysroot/include/$(dirname "$relative")"
        cp "$header" "$sysroot/include/$relative"
    done
    local -A staged=()
    local queue=() library
    for library in icuuc icudata jpeg z zip; do
        queue+=("$(readlink -f "$(g++ -print-file-name=lib$library.so)")")
    done
    while [[ ${#queue[@]} -gt 0 ]]; do
        library=${queue[0]}
        queue=("${queue[@]:1}")
        local soname
        soname=$(objdump -p "$library" | awk '/SONAME/ {print $2}')
        [[ -n "$soname" && -z "${staged[$soname]:-}" ]] || continue
        staged[$soname]=1
        cp -L "$library" "$sysroot/lib/$soname"
        local needed
        for needed in $(ldd "$library" | awk '/=> \// {print $3}'); do
            case $(basename "$needed") in
                libc.so* | libm.so* | libstdc++.so* | libgcc_s.so* | ld-linux* | libpthread.so* | libdl.so* | librt.so*) ;;
                *) queue+=("$(readlink -f "$needed")") ;;
            esac
        done
    done
    if git rev-parse HEAD > .deps/commit 2>/dev/null; then
        git diff --quiet HEAD || echo "(with uncommitted changes)" >> .deps/commit
    else
        echo unknown > .deps/commit
    fi
    echo "staged .deps/: ${!staged[*]}, $(find "$sysroot/include" -type f | wc -l) headers," \
        "$(du -sh .deps | cut -f1), commit $(head -1 .deps/commit)"
}

if [[ "${1:-}" == "--stage" ]]; then
    for p in libicu-dev libjpeg62-turbo-dev zlib1g-dev libzip-dev libstb-dev doctest-dev; do
        dpkg-query -W "$p" > /dev/null 2>&1 || { echo "$p is not installed: run tools/install_deps.sh" >&2; exit 1; }
    done
    stage
    exit 0
fi

dry_run=0
quick=0
kernels=0
if [[ "${1:-}" == "--dry-run" ]]; then
    dry_run=1
    shift
elif [[ "${1:-}" == "--quick" ]]; then
    quick=1
    shift
elif [[ "${1:-}" == "--kernels" ]]; then
    kernels=1
    shift
fi
report="${1:-gpu_report.md}"
build=build-gpu
jobs=$(nproc 2>/dev/null || echo 4)
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }
[[ -f $sysroot/include/doctest/doctest.h ]] || { echo "run tools/gpu_check.sh --stage first (here, not on the GPU machine)" >&2; exit 1; }
# Each staged library also under its link-time name (libicuuc.so -> libicuuc.so.72): made here, as links
# need not survive the copy to the GPU machine. The binaries find them at run time by an RPATH (not a
# RUNPATH: an RPATH also serves the libraries' own dependencies, libzip's libbz2 say), so nothing is set
# in the environment that the machine's Python (PyTorch's benchmarks) would see.
for library in "$sysroot"/lib/*.so.*; do
    ln -sfn "$(basename "$library")" "${library%%.so.*}.so"
done
staged_rpath="-Wl,--disable-new-dtags -Wl,-rpath,$PWD/$sysroot/lib -Wl,-rpath-link,$PWD/$sysroot/lib"

log_dir=$(dirname "$report")
mkdir -p "$log_dir"
{
    echo "# aclip GPU check"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    # The id staged with the tree (--stage): the GPU machine's copy may carry an older checkout's .git (run
    # 7 reported the session's first commit); without a staged id, git's HEAD.
    if [[ -f .deps/commit ]]; then
        echo "- commit: $(tr '\n' ' ' < .deps/commit)"
    elif head=$(git rev-parse HEAD 2>/dev/null); then
        git diff --quiet HEAD 2>/dev/null && echo "- commit: $head" || echo "- commit: $head (with uncommitted changes)"
    else
        echo "- commit: unknown"
    fi
    echo "- device: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo none)"
    echo "- nvcc: $(nvcc --version 2>/dev/null | tail -1 || echo none)"
} > "$report"

status=0
echo "== configure and build ($jobs jobs)"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cuda_flag=ON
# A dry run ignores /usr, so that the staged prefix must supply every data library, as on the GPU machine
# (ccache, CUDA in /usr/local and the compilers are still found).
isolate=()
if [[ $dry_run -eq 1 ]]; then
    cuda_flag=AUTO
    isolate=(-DCMAKE_IGNORE_PREFIX_PATH=/usr -DCCACHE_PROGRAM="$(command -v ccache || echo CCACHE_PROGRAM-NOTFOUND)")
fi
# NCCL: beside the toolkit, or in pip's nvidia-nccl package of the machine's PyTorch
if [[ -z "${NCCL_ROOT:-}" ]]; then
    NCCL_ROOT=$(python3 -c "import nvidia.nccl as n; print(list(n.__path__)[0])" 2>/dev/null || true)
    export NCCL_ROOT
fi
if ! cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DACLIP_ENGINE_ONLY=OFF -DACLIP_CUDA=$cuda_flag \
        -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_PREFIX_PATH="$PWD/$sysroot" \
        -DDOCTEST_INCLUDE_DIR="$PWD/$sysroot/include" -DCMAKE_EXE_LINKER_FLAGS="$staged_rpath" "${isolate[@]}" \
        > "$log_dir/gpu_configure.log" 2>&1; then
    tail -30 "$log_dir/gpu_configure.log"
    echo "- configure: FAILED (see gpu_configure.log)" >> "$report"
    exit 1
fi
targets=()
[[ $quick -eq 1 ]] && targets=(--target aclip_tests aclip_bench_step_cuda aclip_train aclip_eval aclip_make_synthetic)
[[ $kernels -eq 1 ]] && targets=(--target aclip_tests aclip_bench_step_cuda aclip_bench_cuda)
if ! cmake --build "$build" -j "$jobs" "${targets[@]}" > "$log_dir/gpu_build.log" 2>&1; then
    grep -E "error|Error" "$log_dir/gpu_build.log" | head -30
    echo "- build: FAILED after $(elapsed) s (see gpu_build.log)" >> "$report"
    exit 1
fi
if [[ -x "$build/aclip_train" ]]; then
    echo "- build: ok in $(elapsed) s; aclip_train loads $(ldd "$build/aclip_train" 2>&1 | grep -oE '\S*/lib(icuuc|jpeg)\.so\S*' | tr '\n' ' ')" >> "$report"
else
    echo "- build: ok in $(elapsed) s" >> "$report"
fi

echo "== tests (--require-gpu) at $(elapsed) s"
require=(--require-gpu)
[[ $dry_run -eq 1 ]] && require=()
# Left to CI, which runs them on every commit: the data and trainer suites (CPU only; the cuda suite has
# the trainer's and evaluation's GPU cases) and the kernels run on emulated CPU threads (*_emulated.cpp:
# the GPU runs the kernels themselves here; ~40 s of CPU).
timeout 240 "$build/tests/aclip_tests" "${require[@]}" --test-suite-exclude=data,train \
    --source-file-exclude='*_emulated.cpp' > "$log_dir/gpu_tests.log" 2>&1
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
if [[ $test_status -ne 0 && $dry_run -eq 0 && $quick -eq 0 && $kernels -eq 0 ]]; then
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

# The training step again with one variable of the environment set (step_with VAR=VALUE LINE1 LINE2): a
# report entry of two lines, then the step's summary line.
step_with() {
    echo "- $2"
    echo "  $3"
    echo '```'
    env "$1" timeout 60 "$build/aclip_bench_step_cuda" --batch 256 --steps 6 --precision bf16 2>&1 |
        grep -v '^step [0-4]:'  # warm-up steps out, any error kept
    echo '```'
}

# aclip_train itself: the quickstart recipe (configs/quickstart.ini on the synthetic set, rendered here) on
# the GPU in bf16, then aclip_eval on its last checkpoint. A dry run trains 20 steps on the CPU.
trainer_run() {
    local device=cuda extra=() run=runs/gpu_check
    [[ $dry_run -eq 1 ]] && device=cpu extra=(train.steps=20 checkpoint.every=10)
    echo "- aclip_train on this machine ($device, bf16): configs/quickstart.ini, then aclip_eval on its"
    echo "  last checkpoint (log lines in gpu_train.log):"
    echo '```'
    if [[ ! -f datasets/synthetic/train/sizes.json ]]; then
        timeout 60 "$build/aclip_make_synthetic" --out datasets/synthetic --train 10000 --val 500 \
            --zeroshot 960 --retrieval 500 > "$log_dir/gpu_synthetic.log" 2>&1 ||
            echo "aclip_make_synthetic FAILED (exit $?): see gpu_synthetic.log"
    fi
    rm -rf "$run"
    timeout 150 "$build/aclip_train" configs/quickstart.ini train.device=$device train.precision=bf16 \
        checkpoint.dir=$run "${extra[@]}" > "$log_dir/gpu_train.log" 2>&1
    echo "aclip_train: exit $?"
    local log="$log_dir/gpu_train.log"
    grep -m1 '^aclip_train' "$log"
    grep -E '^step [0-9]+/' "$log" | tail -1
    grep -E '^(eval |done)|rror' "$log" | tail -4
    local last
    last=$(ls "$run"/*.model.safetensors 2>/dev/null | tail -1)
    if [[ -n "$last" ]]; then
        timeout 60 "$build/aclip_eval" --checkpoint "$last" > "$log_dir/gpu_eval.log" 2>&1
        echo "aclip_eval $last: exit $?"
        grep -vE '^\[|=|^#|^$' "$log_dir/gpu_eval.log" | tail -4
    fi
    echo '```'
}

if [[ $dry_run -eq 1 ]]; then
    echo "== aclip_train (CPU) at $(elapsed) s"
    trainer_run >> "$report"
else
    echo "== the training step at $(elapsed) s"
    {
        echo "- A-CLIP training step on this GPU (aclip_bench_step_cuda, random 8-bit views copied from"
        echo "  page-locked memory each step as the trainer's), then 2 steps under the kernel profile (where"
        echo "  the step's time goes; its 'memcpy host to device' rows are the copies):"
        echo '```'
        timeout 150 "$build/aclip_bench_step_cuda" --batch 256 --steps 6 --precision bf16 --profile 2 2>&1 |
            grep -v '^step [0-4]:'  # warm-up steps out, any error kept
        echo '```'
    } >> "$report"
    if [[ $kernels -eq 0 ]]; then
        echo "== aclip_train at $(elapsed) s"
        trainer_run >> "$report"
    fi
    if [[ $quick -eq 0 ]]; then
        echo "== benchmarks at $(elapsed) s"
        {
            echo "- benchmarks (tools/bench/compare_cuda.sh $build, same card, same run):"
            echo '```'
            timeout 150 tools/bench/compare_cuda.sh "$build" 2>&1
            echo '```'
            if (( $(elapsed) < 400 && kernels == 0 )); then
                step_with ACLIP_TENSOR_CORE_ATTENTION=0 \
                    "the same step with the tensor-core attention off (ACLIP_TENSOR_CORE_ATTENTION=0: the" \
                    "composed attention), for their share of the step, and a figure should their parity case fail:"
                step_with ACLIP_BIAS_GRADIENT_EPILOGUE=0 \
                    "the same step with the bias gradients summed apart (ACLIP_BIAS_GRADIENT_EPILOGUE=0), against" \
                    "cuBLASLt's bias-gradient epilogue on the weight-gradient products (the first step above):"
            fi
            # Hardware counters where the machine lets ncu read them (Firecracker yes, gVisor no:
            # /work/.library/device/KINDS.md): each kernel of the memory-bound cases, attention and the
            # embedding's backward (index_add's five), once.
            if (( $(elapsed) < 400 && kernels == 0 )) && command -v ncu > /dev/null; then
                echo "- Nsight Compute on the benchmark's memory-bound and attention kernels, one launch each"
                echo "  (tools/bench/ncu_summary.py; the report is kernels.ncu-rep beside this one):"
                echo '```'
                timeout 100 ncu --clock-control none -f -o "$log_dir/kernels" --launch-count 90 \
                    --kernel-name regex:'layer_norm|pointwise|adamw|ema_kernel|softmax|forward_kernel|backward_kv|backward_q|delta_kernel|add_chunks|sum_columns|cls_probs|copy_|count_rows|scan_counts|place_rows|order_buckets|add_buckets' \
                    --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy \
                    --section LaunchStats "$build/aclip_bench_cuda" --warmups 0 --iters 1 \
                    > "$log_dir/gpu_ncu.log" 2>&1
                echo "ncu: exit $? (its log: gpu_ncu.log)"
                if [[ -f "$log_dir/kernels.ncu-rep" ]]; then
                    ncu --import "$log_dir/kernels.ncu-rep" --csv --page details 2>&1 |
                        python3 tools/bench/ncu_summary.py
                else
                    grep -E "==ERROR==|==WARNING==" "$log_dir/gpu_ncu.log" | head -5
                fi
                echo '```'
            fi
            if (( $(elapsed) < 420 && kernels == 0 )); then
                echo "- the same step with gradient checkpointing (train.grad_checkpointing: time against memory):"
                echo '```'
                timeout 60 "$build/aclip_bench_step_cuda" --batch 256 --steps 6 --precision bf16 \
                    --grad-checkpointing 2>&1 | grep -v '^step [0-4]:'
                echo '```'
            fi
        } >> "$report"
    fi
fi
echo "- total: $(elapsed) s" >> "$report"
cat "$report"
exit $status
