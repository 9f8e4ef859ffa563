#!/usr/bin/env python3
"""make_op_fixtures.py: PyTorch reference values for every engine op, written to
tests/fixtures/ops.safetensors. Dev-only (needs Debian's python3-torch); CI reads the committed file.

For each case NAME the file holds NAME.in0, NAME.in1, ... (inputs), NAME.out (the output), NAME.w (a
random weight of the output's shape) and NAME.grad0, ... (the gradient of sum(out * w) for each float
input). tests/ops/test_fixtures.cpp runs the same op in the engine and compares.

Run: python3 tools/reference/make_op_fixtures.py
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_io  # noqa: E402

torch.manual_seed(0)
torch.set_num_threads(1)


def rnd(*shape, lo=-1.0, hi=1.0):
    return torch.rand(*shape, dtype=torch.float64) * (hi - lo) + lo


def idx(high, *shape):
    return torch.randint(0, high, shape, dtype=torch.int64)


def sdpa(q, k, v, causal):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        T = s.shape[-1]
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(s, -1) @ v


def self_attention(qkv, heads, causal):
    """Multi-head self-attention of a packed (B, T, 3W) projection, as nn.MultiheadAttention splits it."""
    B, T, W3 = qkv.shape
    W = W3 // 3
    q, k, v = qkv.view(B, T, 3, heads, W // heads).permute(2, 0, 3, 1, 4)
    return sdpa(q, k, v, causal).permute(0, 2, 1, 3).reshape(B, T, W)


def bn_train(x, w, b):
    return F.batch_norm(x, torch.zeros(x.shape[1], dtype=x.dtype), torch.ones(x.shape[1], dtype=x.dtype), w, b,
                        training=True, momentum=0.1, eps=1e-5)


def bn_eval(x, w, b, rm, rv):
    return F.batch_norm(x, rm.detach(), rv.detach(), w, b, training=False, eps=1e-5)


# name: (function, inputs). Float inputs are differentiated; integer inputs are indices or masks.
CASES = {
    "add_broadcast": (lambda a, b: a + b, [rnd(3, 1, 5), rnd(4, 1)]),
    "sub_broadcast": (lambda a, b: a - b, [rnd(2, 3, 4), rnd(4)]),
    "mul_broadcast": (lambda a, b: a * b, [rnd(2, 3, 4), rnd(3, 1)]),
    "div_broadcast": (lambda a, b: a / b, [rnd(2, 3, 4), rnd(1, 4, lo=0.5, hi=2.0)]),
    "maximum": (lambda a, b: torch.maximum(a, b), [rnd(3, 4), rnd(3, 4)]),
    "neg": (lambda a: -a, [rnd(3, 4)]),
    "exp": (torch.exp, [rnd(3, 4)]),
    "log": (torch.log, [rnd(3, 4, lo=0.1, hi=3.0)]),
    "sqrt": (torch.sqrt, [rnd(3, 4, lo=0.1, hi=3.0)]),
    "rsqrt": (torch.rsqrt, [rnd(3, 4, lo=0.1, hi=3.0)]),
    "abs": (torch.abs, [rnd(3, 4)]),
    "pow": (lambda a: a ** 3.0, [rnd(3, 4)]),
    "clamp": (lambda a: a.clamp(-0.5, 0.25), [rnd(4, 5)]),
    "relu": (F.relu, [rnd(4, 5)]),
    "gelu": (F.gelu, [rnd(4, 5, lo=-3, hi=3)]),
    "quick_gelu": (lambda a: a * torch.sigmoid(1.702 * a), [rnd(4, 5, lo=-3, hi=3)]),
    "sigmoid": (torch.sigmoid, [rnd(4, 5, lo=-3, hi=3)]),
    "tanh": (torch.tanh, [rnd(4, 5, lo=-3, hi=3)]),
    "where": (lambda c, a, b: torch.where(c.bool(), a, b), [idx(2, 3, 4).to(torch.uint8), rnd(3, 4), rnd(1, 4)]),
    "masked_fill": (lambda a, m: a.masked_fill(m.bool(), -2.5), [rnd(3, 4), idx(2, 1, 4).to(torch.uint8)]),
    "sum_dims": (lambda a: a.sum(dim=(0, 2)), [rnd(2, 3, 4)]),
    "sum_keepdim": (lambda a: a.sum(dim=1, keepdim=True), [rnd(2, 3, 4)]),
    "mean_all": (lambda a: a.mean(), [rnd(2, 3, 4)]),
    "var_dim": (lambda a: a.var(dim=1, unbiased=True), [rnd(3, 5, 2)]),
    "max_dim": (lambda a: a.max(dim=1).values, [rnd(3, 5, 2)]),
    "argmax_dim": (lambda a: a.argmax(dim=-1), [rnd(4, 7)]),
    "matmul_2d": (torch.matmul, [rnd(5, 7), rnd(7, 3)]),
    "matmul_batched_broadcast": (torch.matmul, [rnd(2, 3, 4, 5), rnd(3, 5, 6)]),
    "linear": (F.linear, [rnd(2, 3, 6), rnd(5, 6), rnd(5)]),
    "linear_add": (lambda r, x, w, b: r + F.linear(x, w, b), [rnd(2, 3, 5), rnd(2, 3, 6), rnd(5, 6), rnd(5)]),
    "softmax": (lambda a: torch.softmax(a, dim=-1), [rnd(3, 7, lo=-4, hi=4)]),
    "softmax_dim0": (lambda a: torch.softmax(a, dim=0), [rnd(5, 3, lo=-4, hi=4)]),
    "log_softmax": (lambda a: torch.log_softmax(a, dim=-1), [rnd(3, 7, lo=-4, hi=4)]),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (x.shape[-1],), w, b, eps=1e-5), [rnd(2, 3, 8), rnd(8), rnd(8)]),
    "batch_norm_train": (bn_train, [rnd(6, 4), rnd(4), rnd(4)]),
    "batch_norm_eval": (bn_eval, [rnd(6, 4), rnd(4), rnd(4), rnd(4), rnd(4, lo=0.5, hi=2.0)]),
    "embedding": (lambda w, i: F.embedding(i, w), [rnd(10, 4), idx(10, 2, 3)]),
    "index_select": (lambda x, i: x.index_select(1, i), [rnd(3, 6, 2), torch.tensor([4, 0, 4, 2])]),
    "gather": (lambda x, i: x.gather(1, i), [rnd(3, 6), idx(6, 3, 4)]),
    "scatter_add": (lambda x, i, s: x.scatter_add(1, i, s), [rnd(3, 6), idx(6, 3, 4), rnd(3, 4)]),
    "concat": (lambda a, b: torch.cat([a, b], dim=1), [rnd(2, 3, 4), rnd(2, 2, 4)]),
    "stack": (lambda a, b: torch.stack([a, b], dim=1), [rnd(2, 4), rnd(2, 4)]),
    "split_second": (lambda a: torch.split(a, [2, 3], dim=1)[1], [rnd(3, 5)]),
    "cross_entropy": (lambda x, t: F.cross_entropy(x, t), [rnd(5, 7, lo=-3, hi=3), idx(7, 5)]),
    "l2_normalize": (lambda x: F.normalize(x, dim=-1), [rnd(4, 6)]),
    "sdpa": (lambda q, k, v: sdpa(q, k, v, False), [rnd(2, 2, 5, 4), rnd(2, 2, 5, 4), rnd(2, 2, 5, 4)]),
    "sdpa_causal": (lambda q, k, v: sdpa(q, k, v, True), [rnd(2, 2, 5, 4), rnd(2, 2, 5, 4), rnd(2, 2, 5, 4)]),
    "topk_values": (lambda x: torch.topk(x, 3, dim=-1).values.detach(), [rnd(4, 9)]),  # no gradient, by design
    "topk_indices": (lambda x: torch.topk(x, 3, dim=-1).indices, [rnd(4, 9)]),
    "argsort": (lambda x: torch.argsort(x, dim=-1), [rnd(3, 8)]),
    "cast_bf16": (lambda x: x.to(torch.bfloat16).to(torch.float32), [rnd(4, 8, lo=-100, hi=100)]),
    "resize_bilinear_up": (lambda x: F.interpolate(x, size=(7, 9), mode="bilinear", align_corners=False),
                           [rnd(2, 3, 4, 5)]),
    "resize_bilinear_down": (lambda x: F.interpolate(x, size=(3, 2), mode="bilinear", align_corners=False),
                             [rnd(1, 2, 7, 6)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 2), [rnd(2, 3, 6, 4)]),
    "gather_rows": (lambda x, i: x[torch.arange(x.shape[0]).unsqueeze(1), i],
                    [rnd(3, 5, 4), torch.tensor([[4, 0], [2, 2], [1, 3]])]),
    "self_attention": (lambda qkv: self_attention(qkv, 2, False), [rnd(2, 5, 24)]),
    "self_attention_causal": (lambda qkv: self_attention(qkv, 2, True), [rnd(2, 5, 24)]),
}


def adamw_fixture(out):
    """10 AdamW steps on a small least-squares problem with warmup + cosine lr, two parameter groups."""
    w = rnd(4, 3).float().requires_grad_()
    b = rnd(3).float().requires_grad_()
    x, y = rnd(8, 4).float(), rnd(8, 3).float()
    out["adamw.w0"], out["adamw.b0"], out["adamw.x"], out["adamw.y"] = w.detach().clone(), b.detach().clone(), x, y
    opt = torch.optim.AdamW([{"params": [w], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0}],
                            lr=1.0, betas=(0.9, 0.98), eps=1e-6)
    base, start, end, warmup, total = 5e-2, 1e-3, 1e-3, 3, 10
    losses = []
    for step in range(total):
        if step < warmup:
            lr = start + (base - start) * step / warmup
        else:
            lr = end + 0.5 * (base - end) * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad()
        loss = ((x @ w + b - y) ** 2).mean()
        loss.backward()
        losses.append(loss.item())
        opt.step()
    out["adamw.losses"] = torch.tensor(losses, dtype=torch.float64)
    out["adamw.w10"], out["adamw.b10"] = w.detach().clone(), b.detach().clone()


class QuickGELU(torch.nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(torch.nn.Module):
    """OpenAI CLIP's ResidualAttentionBlock (pre-norm), with PyTorch's nn.MultiheadAttention."""

    def __init__(self, width, heads, act):
        super().__init__()
        from collections import OrderedDict
        self.ln_1 = torch.nn.LayerNorm(width)
        self.attn = torch.nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_2 = torch.nn.LayerNorm(width)
        self.mlp = torch.nn.Sequential(OrderedDict(c_fc=torch.nn.Linear(width, 4 * width), act=act,
                                                   c_proj=torch.nn.Linear(4 * width, width)))

    def forward(self, x, causal):
        T = x.shape[1]
        mask = torch.full((T, T), float("-inf")).triu(1) if causal else None
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=mask)[0]
        return x + self.mlp(self.ln_2(x))


def block_fixture(out):
    """One causal QuickGELU block (the text tower's) and one GELU block (the vision tower's)."""
    for name, act, causal in (("block_text", QuickGELU(), True), ("block_vision", torch.nn.GELU(), False)):
        block = Block(16, 2, act)
        for p in block.parameters():  # nonzero biases and non-identity norms, so every term is tested
            torch.nn.init.uniform_(p, -0.3, 0.3)
        x = rnd(2, 5, 16).float().requires_grad_()
        y = block(x, causal)
        w = torch.randn(y.shape)
        (y * w).sum().backward()
        out[f"{name}.x"], out[f"{name}.out"], out[f"{name}.w"], out[f"{name}.grad_x"] = x.detach(), y.detach(), w, x.grad
        for key, p in block.named_parameters():
            out[f"{name}.param.{key}"] = p.detach().clone()
            out[f"{name}.grad.{key}"] = p.grad


def batchnorm_fixture(out):
    """BatchNorm1d: two training steps (running statistics move), then eval."""
    bn = torch.nn.BatchNorm1d(5, momentum=0.1)
    torch.nn.init.uniform_(bn.weight, 0.5, 1.5)
    torch.nn.init.uniform_(bn.bias, -0.5, 0.5)
    out["bn.weight"], out["bn.bias"] = bn.weight.detach().clone(), bn.bias.detach().clone()
    for i in range(2):
        x = rnd(8, 5).float()
        out[f"bn.x{i}"], out[f"bn.y{i}"] = x, bn(x).detach()
    bn.eval()
    x = rnd(3, 5).float()
    out["bn.x_eval"], out["bn.y_eval"] = x, bn(x).detach()
    out["bn.running_mean"], out["bn.running_var"] = bn.running_mean.clone(), bn.running_var.clone()


def main():
    out = {}
    for name, (fn, inputs) in CASES.items():
        inputs = [t.float() if t.is_floating_point() else t for t in inputs]
        for i, t in enumerate(inputs):
            out[f"{name}.in{i}"] = t
        leaves = [t.clone().requires_grad_() if t.is_floating_point() else t for t in inputs]
        y = fn(*leaves)
        out[f"{name}.out"] = y.detach()
        if y.is_floating_point() and y.requires_grad:
            w = torch.randn(y.shape, dtype=torch.float32)
            out[f"{name}.w"] = w
            (y * w).sum().backward()  # inputs with no gradient (running statistics) get no gradN entry
            for i, t in enumerate(leaves):
                if t.is_floating_point() and t.grad is not None:
                    out[f"{name}.grad{i}"] = t.grad
    adamw_fixture(out)
    block_fixture(out)
    batchnorm_fixture(out)
    path = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "ops.safetensors")
    safetensors_io.save(path, out, {"generator": "tools/reference/make_op_fixtures.py",
                                    "torch": torch.__version__, "seed": "0"})
    print(f"wrote {len(out)} tensors to {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
