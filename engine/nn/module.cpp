// module.cpp: see module.h.
#include "engine/nn/module.h"

#include "engine/autograd/grad_mode.h"

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

std::vector<NamedTensor> Module::named_state() {
    std::vector<NamedTensor> all = named_parameters();
    for (auto& b : named_buffers()) all.push_back(b);
    return all;
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

void Module::to(Device device) {
    NoGradGuard no_grad;
    Visitor v(
        [device](const std::string&, Tensor& t) {
            const bool grad = t.requires_grad();
            t = t.detach().to(device);
            if (grad) t.requires_grad_();
        },
        [device](const std::string&, Tensor& t) { t = t.detach().to(device); });
    visit(v);
}

void Module::zero_grad() {
    for (auto& p : named_parameters()) p.tensor->zero_grad();
}

int64_t Module::num_parameters() {
    int64_t n = 0;
    for (auto& p : named_parameters()) n += p.tensor->numel();
    return n;
}

void copy_state(Module& dst, Module& src) {
    std::vector<NamedTensor> d = dst.named_state(), s = src.named_state();
    AC_CHECK(d.size() == s.size(), "copy_state: destination has ", d.size(), " tensors, source ", s.size());
    NoGradGuard no_grad;
    for (size_t i = 0; i < d.size(); ++i) {
        AC_CHECK(d[i].name == s[i].name && d[i].tensor->shape() == s[i].tensor->shape(), "copy_state: '",
                 d[i].name, "' ", d[i].tensor->desc(), " vs '", s[i].name, "' ", s[i].tensor->desc());
        d[i].tensor->copy_(*s[i].tensor);
    }
}

}  // namespace aclip
