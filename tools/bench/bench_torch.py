#!/usr/bin/env python3
"""bench_torch.py: the PyTorch side of tools/bench/compare.sh. Times the same cases as aclip_bench, on
the CPU, in f32, with the same thread count, and prints one "name milliseconds" line per case.
Usage: python3 tools/bench/bench_torch.py [--threads N] [--iters N]"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F


class Block(torch.nn.Module):
    """OpenAI CLIP's pre-norm ResidualAttentionBlock, with the engine's math attention path."""

    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.ln_1 = torch.nn.LayerNorm(width)
        self.in_proj = torch.nn.Linear(width, 3 * width)
        self.out_proj = torch.nn.Linear(width, width)
        self.ln_2 = torch.nn.LayerNorm(width)
        self.c_fc = torch.nn.Linear(width, 4 * width)
        self.c_proj = torch.nn.Linear(4 * width, width)

    def forward(self, x):
        B, T, W = x.shape
        q, k, v = self.in_proj(self.ln_1(x)).view(B, T, 3, self.heads, W // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v) if hasattr(F, "scaled_dot_product_attention") else \
            torch.softmax(q @ k.transpose(-2, -1) / (W // self.heads) ** 0.5, -1) @ v
        x = x + self.out_proj(a.permute(0, 2, 1, 3).reshape(B, T, W))
        return x + self.c_proj(F.gelu(self.c_fc(self.ln_2(x))))


def time_ms(iters, fn):
    for _ in range(3):
        fn()
    ms = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ms)


def fwd_bwd(out, w):
    (out * w).sum().backward()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    B, T, W, H = 64, 64, 256, 4
    torch.manual_seed(0)
    u = lambda *s, grad=False: (torch.rand(*s) * 2 - 1).requires_grad_(grad)
    print(f"# torch {torch.__version__}: threads={torch.get_num_threads()}, median of {args.iters}, ms")
    block = Block(W, H)
    x, wx = u(B, T, W, grad=True), u(B, T, W)
    print(f"block_fwd_bwd {time_ms(args.iters, lambda: (block.zero_grad(), fwd_bwd(block(x), wx))):.3f}")
    with torch.no_grad():
        print(f"block_fwd {time_ms(args.iters, lambda: block(x)):.3f}")
    a, wt, wm = u(B * T, W, grad=True), u(W, 4 * W, grad=True), u(B * T, 4 * W)
    print(f"matmul_fwd_bwd {time_ms(args.iters, lambda: fwd_bwd(a @ wt, wm)):.3f}")
    g, b, wa = u(W, grad=True), u(W, grad=True), u(B * T, W)
    print(f"layer_norm_fwd_bwd {time_ms(args.iters, lambda: fwd_bwd(F.layer_norm(a, (W,), g, b, 1e-5), wa)):.3f}")
    s, ws = u(B, H, T, T, grad=True), u(B, H, T, T)
    print(f"softmax_fwd_bwd {time_ms(args.iters, lambda: fwd_bwd(torch.softmax(s, -1), ws)):.3f}")
    q, k, v, wq = u(B, H, T, W // H, grad=True), u(B, H, T, W // H, grad=True), u(B, H, T, W // H, grad=True), \
        u(B, H, T, W // H)
    sdpa = getattr(F, "scaled_dot_product_attention", None) or \
        (lambda q, k, v: torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, -1) @ v)
    print(f"attention_fwd_bwd {time_ms(args.iters, lambda: fwd_bwd(sdpa(q, k, v), wq)):.3f}")


if __name__ == "__main__":
    main()
