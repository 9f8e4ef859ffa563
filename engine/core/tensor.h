// tensor.h: the Tensor handle and the TensorImpl it shares.
// A tensor is a view (shape, strides in elements, offset) onto a shared Storage, plus its dtype and the
// autograd fields: requires_grad, the Node that produced it (null for leaves) and, for leaves, the
// accumulated gradient. Views (reshape, permute, narrow, expand, ...) share storage and are recorded
// by autograd like any op. Ops live in engine/ops/ops.h; this header only holds what every op needs.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/dtype.h"
#include "engine/core/shape.h"
#include "engine/core/storage.h"

namespace aclip {

struct Node;  // engine/autograd/node.h
class Tensor;

struct TensorImpl {
    std::shared_ptr<Storage> storage;
    Shape shape;
    Strides strides;
    int64_t offset = 0;  // in elements
    DType dtype = DType::F32;
    bool requires_grad = false;
    std::shared_ptr<Node> grad_fn;     // the op that made this tensor; null for leaves
    std::shared_ptr<TensorImpl> grad;  // accumulated gradient (leaves only)
    // These values in another dtype, written by the op that wrote them (set_rounded), while the storage's
    // version is rounded_version: to() hands it over once instead of casting.
    std::shared_ptr<TensorImpl> rounded;
    uint64_t rounded_version = 0;
};

class Tensor {
  public:
    Tensor() = default;
    explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

    bool defined() const { return impl_ != nullptr; }
    const Shape& shape() const { return impl().shape; }
    const Strides& strides() const { return impl().strides; }
    int64_t offset() const { return impl().offset; }
    int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
    int64_t size(int64_t d) const;  // negative d counts from the end
    int64_t numel() const { return shape_numel(impl().shape); }
    DType dtype() const { return impl().dtype; }
    Device device() const { return impl().storage->device; }
    bool is_pinned() const { return impl().storage->pinned; }  // page-locked CPU memory
    bool is_contiguous() const;
    std::string desc() const;  // "f32[2, 3] cpu" for error messages

    // Typed pointer to the first element (the view's offset applied); T must match the dtype.
    template <class T>
    T* data() const {
        AC_CHECK(dtype_of<T>::value == dtype(), "data<", dtype_name(dtype_of<T>::value),
                 ">() on a tensor of dtype ", dtype_name(dtype()));
        return static_cast<T*>(impl().storage->data) + impl().offset;
    }
    void* raw_data() const;

    // Copies to a std::vector (any layout), converting to T.
    template <class T>
    std::vector<T> to_vector() const;
    double item() const;  // the value of a one-element tensor, as double

    // ---- autograd ----
    bool requires_grad() const { return impl().requires_grad; }
    Tensor& requires_grad_(bool on = true);
    bool is_leaf() const { return impl().grad_fn == nullptr; }
    Tensor grad() const { return Tensor(impl().grad); }
    void zero_grad() { impl().grad.reset(); }
    void backward() const;  // from a one-element tensor; see engine/autograd/backward.cpp
    void backward(const Tensor& gradient) const;  // from any tensor, given the gradient of its elements
    Tensor detach() const;                        // same storage, no history
    uint64_t version() const { return impl().storage->version; }

    // ---- views (share storage, recorded by autograd) ----
    Tensor reshape(const Shape& shape) const;  // a view when the layout allows, else a copy
    Tensor view(const Shape& shape) const;     // a view or an error
    Tensor permute(const std::vector<int64_t>& order) const;
    Tensor transpose(int64_t a, int64_t b) const;
    Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
    Tensor select(int64_t dim, int64_t index) const;  // narrow + squeeze
    Tensor expand(const Shape& shape) const;
    Tensor squeeze(int64_t dim) const;
    Tensor unsqueeze(int64_t dim) const;
    Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
    Tensor contiguous() const;     // itself when already contiguous
    Tensor to(DType dtype) const;  // differentiable between floating dtypes
    // Leaves `rounded` (this tensor's values in another dtype, same shape, written in the same pass as
    // them: a LayerNorm backward's bf16 copy of a residual stream's f32 gradient) for the next to() into
    // its dtype, until an in-place write or that to() takes it.
    void set_rounded(const Tensor& rounded) const;
    // A contiguous copy on that device (itself when already there). To the GPU the copy is queued and this
    // returns at once; from page-locked memory (empty_pinned) the host must not write the source until the
    // GPU has run the copy (freeing it is safe). To the CPU it waits for the copy.
    Tensor to(Device device) const;
    Tensor clone() const;

    // ---- in-place writes (not recorded; refused on tensors that need grad while grad mode is on) ----
    Tensor& copy_(const Tensor& src);  // src broadcasts to this shape; any dtype converts
    Tensor& fill_(double value);
    Tensor& zero_() { return fill_(0.0); }
    Tensor& add_(const Tensor& other, double alpha = 1.0);  // this += alpha * other
    Tensor& mul_(double factor);

    TensorImpl& impl() const {
        AC_CHECK(impl_ != nullptr, "use of an undefined tensor");
        return *impl_;
    }
    const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
    bool same(const Tensor& o) const { return impl_ == o.impl_; }

  private:
    std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// ---- factories ----
[[nodiscard]] Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
// A CPU tensor in page-locked memory when a GPU is present (its copy to the GPU is then a direct DMA),
// else an ordinary one: for batches on their way to the device.
[[nodiscard]] Tensor empty_pinned(const Shape& shape, DType dtype = DType::F32);
[[nodiscard]] Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
[[nodiscard]] Tensor ones(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
[[nodiscard]] Tensor full(const Shape& shape, double value, DType dtype = DType::F32,
                          Device device = Device::CPU);
[[nodiscard]] Tensor scalar_tensor(double value, DType dtype = DType::F32);  // shape []
[[nodiscard]] Tensor arange(int64_t n, DType dtype = DType::I64);
[[nodiscard]] Tensor zeros_like(const Tensor& t);  // same shape, dtype and device
[[nodiscard]] Tensor ones_like(const Tensor& t);
template <class T>
[[nodiscard]] Tensor from_vector(const std::vector<T>& values, const Shape& shape);
// A view of existing storage with explicit strides (tests use it for non-contiguous inputs).
[[nodiscard]] Tensor as_strided(const Tensor& base, const Shape& shape, const Strides& strides,
                                int64_t offset);

// The device all defined tensors share; throws naming op and the tensors when they differ.
Device common_device(const char* op, std::initializer_list<const Tensor*> tensors);

}  // namespace aclip
