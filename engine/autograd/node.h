// node.h: the autograd graph. Define-by-run: each differentiable op that sees an input requiring grad
// appends a Node, stamped with a global sequence number, holding
//   - one Edge per input: the Node that produced it, or the leaf whose .grad receives its gradient;
//   - the backward function, a closure over exactly the tensors it needs (SavedTensor).
// Sequence numbers order the graph: a node's inputs always have smaller numbers, so walking nodes in
// decreasing sequence is a reverse topological order (the "tape"), with no recursion.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "engine/core/tensor.h"

namespace aclip {

struct Edge {
    std::shared_ptr<Node> node;        // set when the input was produced by an op
    std::shared_ptr<TensorImpl> leaf;  // set when the input is a leaf that requires grad
};

// Given the gradient of the op's output, returns one gradient per input (undefined where none flows).
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

struct Node {
    uint64_t seq = 0;
    const char* op = "";
    std::vector<Edge> edges;
    std::vector<Shape> input_shapes;  // each returned gradient must have this shape
    std::vector<DType> input_dtypes;  // and this dtype
    BackwardFn backward;              // reset after it runs, which releases what it saved
};

// A tensor kept for backward, with the storage version it had when saved. get() refuses it if an
// in-place write changed it since, rather than computing a wrong gradient.
class SavedTensor {
  public:
    SavedTensor() = default;
    SavedTensor(const Tensor& t, const char* op);
    const Tensor& get() const;

  private:
    Tensor tensor_;
    uint64_t version_ = 0;
    const char* op_ = "";
};

// Records `out` as produced by `op` from `inputs`, when grad mode is on and any input requires grad.
// Returns out (with grad_fn set in that case).
Tensor record(const char* op, Tensor out, const std::vector<Tensor>& inputs, BackwardFn backward);

// True when record() would record an op over these inputs.
bool needs_grad(const std::vector<Tensor>& inputs);

// Inside a backward function: the gradient already gathered for input i from the input's other uses,
// when the op may add its own into it in place (nothing else holds it; contiguous, of the input's shape
// and dtype; the input appears once among the op's inputs); else undefined. An op that adds into it
// returns that same tensor as input i's gradient, and the engine does not add it again: a residual
// stream's LayerNorm writes (its gradient + the pending one) in one pass instead of its gradient and
// then a separate sum. Its version is bumped, so a copy of its old values (set_rounded) is dropped.
Tensor pending_gradient(size_t input);
uint64_t gradients_added_in_place();  // how many times an op did so, in this process

}  // namespace aclip
