# torch_blas_kernels.sh (sourced by compare.sh and compare_step.sh): gives the PyTorch run the OpenBLAS
# kernels the aclip run used. Debian's PyTorch multiplies through the same OpenBLAS, which takes a CPU newer
# than itself for "Prescott" (SSE3) and runs its products several times slower; aclip mends that pick
# (engine/cpu/blas_kernels.h), so without this the comparison would set AVX-512 kernels against SSE3 ones.
# Usage: torch_blas_kernels "$aclip_output"   (exports OPENBLAS_CORETYPE unless the caller set it)
torch_blas_kernels() {
    local core
    core=$(echo "$1" | sed -n 's/.*OpenBLAS [0-9.]*, \([A-Za-z0-9]*\) kernels.*/\1/p' | head -n 1)
    if [[ -z "${OPENBLAS_CORETYPE:-}" && -n "$core" ]]; then
        export OPENBLAS_CORETYPE="$core"
        echo "# torch: OPENBLAS_CORETYPE=$core, the kernels aclip ran"
    fi
}
