// module.cpp: see module.h.
#include "engine/nn/module.h"

namespace aclip {

void Visitor::child(const std::string& name, Module& m) {
    if (on_module_) on_module_(m);
    Visitor sub(on_param_, on_buffer_, on_module_, prefix_ + name + ".");
    m.visit(sub);
}

std::vector<NamedTensor> Module::named_parameters() {
    std::vector<NamedTensor> out;
    Visitor v([&](const std::string& n, Tensor& t) { out.push_back({n, &t}); }, {});
    visit(v);
    return out;
}

std::vector<NamedTensor> Module::named_buffers() {
    std::vector<NamedTensor> out;
    Visitor v({}, [&](const std::string& n, Tensor& t) { out.push_back({n, &t}); });
    visit(v);
    return out;
}

std::vector<Tensor> Module::parameters() {
    std::vector<Tensor> out;
    for (auto& p : named_parameters()) out.push_back(*p.tensor);
    return out;
}

void Module::train(bool on) {
    training_ = on;
    Visitor v({}, {}, [on](Module& m) { m.training_ = on; });
    visit(v);
}

void Module::set_requires_grad(bool on) {
    for (auto& p : named_parameters()) p.tensor->requires_grad_(on);
}

void Module::zero_grad() {
    for (auto& p : named_parameters()) p.tensor->zero_grad();
}

int64_t Module::num_parameters() {
    int64_t n = 0;
    for (auto& p : named_parameters()) n += p.tensor->numel();
    return n;
}

}  // namespace aclip
