// module.h: the Module base and the visitor that gives every parameter and buffer its dotted name.
// A module lists its own tensors and children in visit(); names then follow the nesting
// ("visual.transformer.resblocks.0.attn.in_proj_weight"), with no reflection and no positional lists,
// so checkpoints and PyTorch state dicts share one naming.
#pragma once
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "engine/core/tensor.h"

namespace aclip {

class Module;

struct NamedTensor {
    std::string name;
    Tensor* tensor;  // points into the module, so loading a checkpoint can replace values in place
};

class Visitor {
  public:
    using TensorFn = std::function<void(const std::string& name, Tensor& t)>;
    using ModuleFn = std::function<void(Module& m)>;
    Visitor(TensorFn on_param, TensorFn on_buffer, ModuleFn on_module = {}, std::string prefix = {})
        : on_param_(std::move(on_param)),
          on_buffer_(std::move(on_buffer)),
          on_module_(std::move(on_module)),
          prefix_(std::move(prefix)) {}

    void param(const std::string& name, Tensor& t) {
        if (on_param_ && t.defined()) on_param_(prefix_ + name, t);
    }
    void buffer(const std::string& name, Tensor& t) {
        if (on_buffer_ && t.defined()) on_buffer_(prefix_ + name, t);
    }
    void child(const std::string& name, Module& m);

  private:
    TensorFn on_param_, on_buffer_;
    ModuleFn on_module_;
    std::string prefix_;
};

class Module {
  public:
    virtual ~Module() = default;
    virtual void visit(Visitor& v) = 0;

    std::vector<NamedTensor> named_parameters();
    std::vector<NamedTensor> named_buffers();
    std::vector<NamedTensor> named_state();  // parameters, then buffers: what a checkpoint holds
    std::vector<Tensor> parameters();        // handles sharing storage with the module's tensors

    void train(bool on = true);  // this module and every child
    void eval() { train(false); }
    bool training() const { return training_; }
    void set_requires_grad(bool on);  // freeze (false) or unfreeze every parameter
    // Moves every parameter and buffer to `device` (new storage there; requires_grad kept, gradients
    // dropped). Do it before building the optimizer, which holds the parameters it updates.
    void to(Device device);
    void zero_grad();
    int64_t num_parameters();

  protected:
    bool training_ = true;
};

// Copies every parameter and buffer of src into the tensor of the same name in dst (no gradient).
// Names and shapes must match exactly; the error names the first that does not.
void copy_state(Module& dst, Module& src);

}  // namespace aclip
