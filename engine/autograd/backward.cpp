// backward.cpp: recording ops and running backward over the recorded graph.
#include <algorithm>
#include <atomic>
#include <unordered_map>

#include "engine/autograd/grad_mode.h"
#include "engine/autograd/node.h"
#include "engine/ops/ops.h"

namespace aclip {

namespace {
thread_local bool t_grad_enabled = true;
std::atomic<uint64_t> g_next_seq{1};
}  // namespace

bool grad_enabled() {
    return t_grad_enabled;
}
void set_grad_enabled(bool on) {
    t_grad_enabled = on;
}

SavedTensor::SavedTensor(const Tensor& t, const char* op)
    : tensor_(t.detach()), version_(t.version()), op_(op) {}

const Tensor& SavedTensor::get() const {
    AC_CHECK_HINT(
        tensor_.version() == version_, "use an out-of-place op, or call clone() before writing in place",
        "backward of ", op_, ": a tensor it saved (", tensor_.desc(),
        ") was modified in place after it was saved (version ", version_, " -> ", tensor_.version(), ")");
    return tensor_;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
    if (!grad_enabled()) return false;
    for (const Tensor& t : inputs)
        if (t.defined() && t.requires_grad()) return true;
    return false;
}

Tensor record(const char* op, Tensor out, const std::vector<Tensor>& inputs, BackwardFn backward) {
    if (!needs_grad(inputs)) return out;
    auto node = std::make_shared<Node>();
    node->seq = g_next_seq.fetch_add(1);
    node->op = op;
    for (const Tensor& in : inputs) {
        Edge e;
        if (in.defined() && in.requires_grad()) {
            if (in.is_leaf())
                e.leaf = in.impl_ptr();
            else
                e.node = in.impl().grad_fn;
        }
        node->edges.push_back(std::move(e));
        node->input_shapes.push_back(in.defined() ? in.shape() : Shape{});
        node->input_dtypes.push_back(in.defined() ? in.dtype() : DType::F32);
    }
    node->backward = std::move(backward);
    out.impl().grad_fn = std::move(node);
    out.impl().requires_grad = true;
    return out;
}

namespace {

std::atomic<uint64_t> g_added_in_place{0};

void accumulate(Tensor& slot, const Tensor& g) {
    if (!slot.defined())
        slot = g;
    else if (g.impl_ptr() != slot.impl_ptr())
        slot = slot + g;
    else  // the same tensor: the op added into it (pending_gradient)
        g_added_in_place.fetch_add(1, std::memory_order_relaxed);
}

// The node whose backward runs on this thread, and the gradients gathered so far: what pending_gradient()
// looks in, only when a backward asks.
struct RunningBackward {
    const Node* node = nullptr;
    std::unordered_map<Node*, Tensor>* grads = nullptr;
};
thread_local RunningBackward t_running;

// Sets t_running for one backward function, restoring the enclosing one after (a checkpointed function
// runs a backward of its own inside its node's).
class RunningGuard {
  public:
    RunningGuard(const Node* node, std::unordered_map<Node*, Tensor>* grads) : saved_(t_running) {
        t_running = {node, grads};
    }
    ~RunningGuard() { t_running = saved_; }
    RunningGuard(const RunningGuard&) = delete;
    RunningGuard& operator=(const RunningGuard&) = delete;

  private:
    RunningBackward saved_;
};

// Whether nothing but `g` itself holds its tensor or its memory, and that memory is exactly its elements:
// a gradient made for this edge alone, which a leaf may keep as its .grad without a copy.
bool owned_alone(const Tensor& g) {
    const TensorImpl& t = *g.impl_ptr();
    return g.impl_ptr().use_count() == 1 && t.storage.use_count() == 1 && !t.grad_fn && !t.requires_grad &&
           g.is_contiguous() && t.offset == 0 &&
           t.storage->bytes == static_cast<size_t>(g.numel()) * dtype_size(g.dtype());
}

void accumulate_leaf(TensorImpl& leaf, Tensor g) {
    if (leaf.grad) {
        Tensor(leaf.grad).add_(g);
    } else if (owned_alone(g)) {
        leaf.grad = g.impl_ptr();  // nobody else sees it: kept as it is (a copy per parameter less)
    } else {
        leaf.grad = g.clone().impl_ptr();  // a private contiguous copy: g may alias other tensors
    }
}

}  // namespace

Tensor pending_gradient(size_t input) {
    const Node* node = t_running.node;
    if (!node || input >= node->edges.size() || !node->edges[input].node) return Tensor();
    const Node* producer = node->edges[input].node.get();
    for (size_t j = 0; j < node->edges.size(); ++j)
        if (j != input && node->edges[j].node.get() == producer) return Tensor();  // the input appears twice
    auto it = t_running.grads->find(const_cast<Node*>(producer));
    if (it == t_running.grads->end()) return Tensor();
    const Tensor& g = it->second;
    const bool alone = g.impl_ptr().use_count() == 1 && g.impl_ptr()->storage.use_count() == 1;
    const bool fits =
        g.is_contiguous() && g.shape() == node->input_shapes[input] && g.dtype() == node->input_dtypes[input];
    if (!alone || !fits) return Tensor();
    // The caller writes into it: a copy of its old values (set_rounded) is stale from here.
    g.impl().storage->version++;
    return g;
}

uint64_t gradients_added_in_place() {
    return g_added_in_place.load(std::memory_order_relaxed);
}

void Tensor::backward() const {
    AC_CHECK(numel() == 1, "backward() needs a one-element tensor (a loss); got ", desc());
    backward(ones_like(*this));
}

void Tensor::backward(const Tensor& gradient) const {
    AC_CHECK_HINT(requires_grad(),
                  "make a parameter require grad, and do not call backward under NoGradGuard",
                  "backward() on a tensor that does not require grad");
    AC_CHECK(gradient.shape() == shape() && gradient.device() == device(), "backward: the gradient ",
             gradient.desc(), " does not match ", desc());
    const Tensor g = gradient.to(dtype());
    if (is_leaf()) {
        accumulate_leaf(impl(), g);
        return;
    }
    NoGradGuard no_grad;  // backward rules are not recorded (no double backward)

    // Collect the graph reachable from this tensor, then order it by decreasing sequence number.
    std::vector<Node*> order;
    std::unordered_map<Node*, bool> seen;
    std::vector<Node*> stack{impl().grad_fn.get()};
    seen[stack.back()] = true;
    while (!stack.empty()) {
        Node* n = stack.back();
        stack.pop_back();
        order.push_back(n);
        for (const Edge& e : n->edges)
            if (e.node && !seen[e.node.get()]) {
                seen[e.node.get()] = true;
                stack.push_back(e.node.get());
            }
    }
    std::sort(order.begin(), order.end(), [](Node* a, Node* b) { return a->seq > b->seq; });

    std::unordered_map<Node*, Tensor> grads;
    grads[order.front()] = g;
    for (Node* node : order) {
        auto it = grads.find(node);
        if (it == grads.end()) continue;  // no gradient reached this node
        Tensor grad_out = std::move(it->second);
        grads.erase(it);
        AC_CHECK_HINT(node->backward, "call backward() once per forward pass", "backward through ", node->op,
                      " a second time: its saved tensors were already released");
        std::vector<Tensor> grad_in;
        {
            RunningGuard running(node, &grads);
            grad_in = node->backward(grad_out);
        }
        node->backward = nullptr;  // release saved tensors now
        AC_CHECK(grad_in.size() == node->edges.size(), "backward of ", node->op, " returned ", grad_in.size(),
                 " gradients for ", node->edges.size(), " inputs");
        for (size_t i = 0; i < grad_in.size(); ++i) {
            const Edge& e = node->edges[i];
            if (!grad_in[i].defined() || (!e.node && !e.leaf)) continue;
            Tensor g = std::move(grad_in[i]);  // alone, unless another entry returned the same tensor
            AC_CHECK(g.shape() == node->input_shapes[i], "backward of ", node->op, ": gradient ", i,
                     " has shape ", shape_str(g.shape()), " but the input had ",
                     shape_str(node->input_shapes[i]));
            if (g.dtype() != node->input_dtypes[i]) g = g.to(node->input_dtypes[i]);
            if (e.node)
                accumulate(grads[e.node.get()], g);
            else
                accumulate_leaf(*e.leaf, std::move(g));
        }
    }
}

}  // namespace aclip
