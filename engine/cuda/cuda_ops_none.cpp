// cuda_ops_none.cpp: the CUDA backend's entry points in a build without it. No tensor can be allocated
// on a GPU in such a build (Storage refuses first, with a hint), so none of these is reachable; each
// still fails with a clear message rather than linking to nothing.
#include "engine/cuda/cuda_ops.h"

namespace aclip::cuda {

namespace {
[[noreturn]] void no_backend(const char* what) {
    AC_FAIL_HINT("configure with -DACLIP_CUDA=ON on a machine with nvcc", what,
                 ": this build has no CUDA backend");
}
}  // namespace

void* allocate(size_t) {
    no_backend("cuda::allocate");
}
void free(void*) {
    no_backend("cuda::free");
}
void* allocate_pinned(size_t) {
    no_backend("cuda::allocate_pinned");
}
void free_pinned(void*) {
    no_backend("cuda::free_pinned");
}
void copy_to_device(void*, const void*, size_t, bool) {
    no_backend("cuda::copy_to_device");
}
void copy_to_host(void*, const void*, size_t) {
    no_backend("cuda::copy_to_host");
}
void* copy_to_host_queued(void*, const void*, size_t) {
    no_backend("cuda::copy_to_host_queued");
}
void wait_for_copy(void*) {
    no_backend("cuda::wait_for_copy");
}
void release_copy(void*) {
    no_backend("cuda::release_copy");
}
void copy_on_device(void*, const void*, size_t) {
    no_backend("cuda::copy_on_device");
}
uint64_t host_waits() {
    return 0;
}
void profile_start() {
    no_backend("cuda::profile_start");
}
std::vector<ProfileRow> profile_stop() {
    no_backend("cuda::profile_stop");
}
void synchronize() {
    no_backend("cuda::synchronize");
}
void set_device(int) {
    no_backend("cuda::set_device");
}
AllocatorStats memory_stats() {
    return {};
}
void reset_peak_memory() {}
void release_cached_memory() {}
std::string device_name() {
    return "none (CPU-only build)";
}
void pointwise(PW, double, double, const Tensor&, const Tensor&, const Tensor&) {
    no_backend("pointwise");
}
void where(const Tensor&, const Tensor&, const Tensor&, const Tensor&) {
    no_backend("where");
}
void strided_copy(const Tensor&, const Tensor&) {
    no_backend("strided_copy");
}
void fill(const Tensor&, double) {
    no_backend("fill");
}
void dropout_scale(const Tensor&, double, uint64_t, uint64_t) {
    no_backend("dropout");
}
void sum(const Tensor&, int64_t, int64_t, int64_t, const Tensor&) {
    no_backend("sum");
}
void max_with_index(const Tensor&, int64_t, int64_t, int64_t, const Tensor&, const Tensor&) {
    no_backend("max");
}
double sum_of_squares(const std::vector<Tensor>&) {
    no_backend("sum_of_squares");
}
void softmax_rows(const Tensor&, const Tensor&, bool) {
    no_backend("softmax");
}
void softmax_backward_rows(const Tensor&, const Tensor&, const Tensor&, bool) {
    no_backend("softmax_backward");
}
void nll_sum(const Tensor&, const Tensor&, const Tensor&) {
    no_backend("cross_entropy");
}
void cross_entropy_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&) {
    no_backend("cross_entropy_backward");
}
void layer_norm_forward(const Tensor&, const Tensor&, const Tensor&, double, const Tensor&, const Tensor&,
                        const Tensor&) {
    no_backend("layer_norm");
}
void layer_norm_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                         const Tensor&, bool, const Tensor&, const Tensor&, const Tensor&) {
    no_backend("layer_norm_backward");
}
bool gemm(const GemmOperand&, const GemmOperand&, const Tensor&, int64_t, int64_t, int64_t, int64_t,
          const Tensor&, GemmEpilogue, const Tensor&) {
    no_backend("matmul");
}
void index_select(const Tensor&, int64_t, int64_t, int64_t, const Tensor&, bool, const Tensor&, const char*) {
    no_backend("index_select");
}
void index_add(const Tensor&, int64_t, int64_t, int64_t, const Tensor&, bool, const Tensor&, const char*) {
    no_backend("index_add");
}
void gather(const Tensor&, int64_t, const Tensor&, const Tensor&) {
    no_backend("gather");
}
void scatter_add(const Tensor&, int64_t, const Tensor&, const Tensor&) {
    no_backend("scatter_add");
}
void sort_rows(const Tensor&, bool, int64_t, const Tensor&) {
    no_backend("sort_rows");
}
void resize_bilinear(const Tensor&, const Tensor&, bool) {
    no_backend("resize_bilinear");
}
void avg_pool2d(const Tensor&, const Tensor&, int64_t, bool) {
    no_backend("avg_pool2d");
}
void flash_attention_forward(const Tensor&, const Tensor&, const Tensor&, bool, const Tensor&,
                             const Tensor&) {
    no_backend("flash_attention_forward");
}
void flash_attention_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                              const Tensor&, bool, const Tensor&, const Tensor&, const Tensor&) {
    no_backend("flash_attention_backward");
}
void attention_cls_probs(const Tensor&, const Tensor&, const Tensor&) {
    no_backend("attention_cls_probs");
}
bool flash_attention_supports(int64_t) {
    return false;
}
bool flash_attention_takes_views(const Tensor&, const Tensor&, const Tensor&) {
    return false;
}
bool tensor_core_attention() {
    return false;
}
bool bias_gradient_epilogue() {
    return false;
}
void adamw_step(const std::vector<Tensor>&, const std::vector<Tensor>&, const std::vector<Tensor>&,
                const std::vector<Tensor>&, const std::vector<float>&, const AdamWScalars&,
                const std::vector<Tensor>&) {
    no_backend("adamw_step");
}
void ema_update(const std::vector<Tensor>&, const std::vector<Tensor>&, double, const std::vector<Tensor>&) {
    no_backend("ema_update");
}
const std::vector<std::string>& kernel_names() {
    static const std::vector<std::string> none;
    return none;
}

}  // namespace aclip::cuda
