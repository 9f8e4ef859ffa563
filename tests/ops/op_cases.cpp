// op_cases.cpp: see op_cases.h.
#include "ops/op_cases.h"

#include "engine/ops/ops.h"

namespace aclip::test {

namespace {

Tensor bn_train(const Inputs& x) {
    return batch_norm(x[0], x[1], x[2], Tensor(), Tensor(), true, 0.1, 1e-5);
}

}  // namespace

const std::map<std::string, OpFn>& op_cases() {
    static const std::map<std::string, OpFn> table = {
        {"add_broadcast", [](const Inputs& x) { return add(x[0], x[1]); }},
        {"sub_broadcast", [](const Inputs& x) { return sub(x[0], x[1]); }},
        {"mul_broadcast", [](const Inputs& x) { return mul(x[0], x[1]); }},
        {"div_broadcast", [](const Inputs& x) { return div(x[0], x[1]); }},
        {"maximum", [](const Inputs& x) { return maximum(x[0], x[1]); }},
        {"neg", [](const Inputs& x) { return neg(x[0]); }},
        {"exp", [](const Inputs& x) { return aclip::exp(x[0]); }},
        {"log", [](const Inputs& x) { return aclip::log(x[0]); }},
        {"sqrt", [](const Inputs& x) { return aclip::sqrt(x[0]); }},
        {"rsqrt", [](const Inputs& x) { return rsqrt(x[0]); }},
        {"abs", [](const Inputs& x) { return aclip::abs(x[0]); }},
        {"pow", [](const Inputs& x) { return pow_scalar(x[0], 3.0); }},
        {"clamp", [](const Inputs& x) { return clamp(x[0], -0.5, 0.25); }},
        {"relu", [](const Inputs& x) { return relu(x[0]); }},
        {"gelu", [](const Inputs& x) { return gelu(x[0]); }},
        {"quick_gelu", [](const Inputs& x) { return quick_gelu(x[0]); }},
        {"sigmoid", [](const Inputs& x) { return sigmoid(x[0]); }},
        {"tanh", [](const Inputs& x) { return aclip::tanh(x[0]); }},
        {"where", [](const Inputs& x) { return where(x[0], x[1], x[2]); }},
        {"masked_fill", [](const Inputs& x) { return masked_fill(x[0], x[1], -2.5); }},
        {"sum_dims",
         [](const Inputs& x) {
             return sum(x[0], {0, 2});
         }},
        {"sum_keepdim", [](const Inputs& x) { return sum(x[0], {1}, true); }},
        {"mean_all", [](const Inputs& x) { return mean(x[0]); }},
        {"var_dim", [](const Inputs& x) { return var(x[0], {1}, true); }},
        {"max_dim", [](const Inputs& x) { return aclip::max(x[0], 1); }},
        {"argmax_dim", [](const Inputs& x) { return argmax(x[0], -1); }},
        {"matmul_2d", [](const Inputs& x) { return matmul(x[0], x[1]); }},
        {"matmul_batched_broadcast", [](const Inputs& x) { return matmul(x[0], x[1]); }},
        {"linear", [](const Inputs& x) { return linear(x[0], x[1], x[2]); }},
        {"linear_add", [](const Inputs& x) { return linear_add(x[0], x[1], x[2], x[3]); }},
        {"softmax", [](const Inputs& x) { return softmax(x[0], -1); }},
        {"softmax_dim0", [](const Inputs& x) { return softmax(x[0], 0); }},
        {"log_softmax", [](const Inputs& x) { return log_softmax(x[0], -1); }},
        {"layer_norm", [](const Inputs& x) { return layer_norm(x[0], x[1], x[2], 1e-5); }},
        {"batch_norm_train", bn_train},
        {"batch_norm_eval",
         [](const Inputs& x) { return batch_norm(x[0], x[1], x[2], x[3], x[4], false, 0.1, 1e-5); }},
        {"embedding", [](const Inputs& x) { return embedding(x[0], x[1]); }},
        {"index_select", [](const Inputs& x) { return index_select(x[0], 1, x[1]); }},
        {"gather", [](const Inputs& x) { return gather(x[0], 1, x[1]); }},
        {"gather_rows", [](const Inputs& x) { return gather_rows(x[0], x[1]); }},
        {"scatter_add", [](const Inputs& x) { return scatter_add(x[0], 1, x[1], x[2]); }},
        {"concat",
         [](const Inputs& x) {
             return concat({x[0], x[1]}, 1);
         }},
        {"stack",
         [](const Inputs& x) {
             return stack({x[0], x[1]}, 1);
         }},
        {"split_second",
         [](const Inputs& x) {
             return split(x[0], {2, 3}, 1)[1];
         }},
        {"cross_entropy", [](const Inputs& x) { return cross_entropy(x[0], x[1]); }},
        {"l2_normalize", [](const Inputs& x) { return l2_normalize(x[0], -1); }},
        {"sdpa", [](const Inputs& x) { return scaled_dot_product_attention(x[0], x[1], x[2], false).out; }},
        {"sdpa_causal",
         [](const Inputs& x) { return scaled_dot_product_attention(x[0], x[1], x[2], true).out; }},
        {"topk_values", [](const Inputs& x) { return topk(x[0], 3).first; }},
        {"topk_indices", [](const Inputs& x) { return topk(x[0], 3).second; }},
        {"argsort", [](const Inputs& x) { return argsort(x[0]); }},
        {"cast_bf16", [](const Inputs& x) { return x[0].to(DType::BF16).to(DType::F32); }},
        {"resize_bilinear_up", [](const Inputs& x) { return resize_bilinear(x[0], 7, 9); }},
        {"resize_bilinear_down", [](const Inputs& x) { return resize_bilinear(x[0], 3, 2); }},
        {"avg_pool2d", [](const Inputs& x) { return avg_pool2d(x[0], 2); }},
        {"self_attention", [](const Inputs& x) { return self_attention(x[0], 2, false); }},
        {"self_attention_causal", [](const Inputs& x) { return self_attention(x[0], 2, true); }},
    };
    return table;
}

}  // namespace aclip::test
