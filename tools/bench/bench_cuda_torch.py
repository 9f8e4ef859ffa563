"""bench_cuda_torch.py: the PyTorch twin of aclip_bench_cuda: the same cases, shapes and dtypes on the same
GPU, timed the same way (3 warm-ups, median of --iters runs bracketed by synchronisations). Prints
"name milliseconds flops bytes" lines; tools/bench/compare_cuda.sh joins the two outputs."""
import argparse
import time

import torch
import torch.nn.functional as F


def time_ms(iters, fn):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    ms = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ms.append((time.perf_counter() - t0) * 1e3)
    ms.sort()
    return ms[len(ms) // 2]


def report(name, ms, flops, bytes_):
    print(f"{name:<24} {ms:10.4f} {flops:14.6g} {bytes_:14.6g}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    it = args.iters
    dev = "cuda"
    torch.backends.cuda.matmul.allow_tf32 = False  # the f32 case is true f32, as in aclip
    print(f"# device {torch.cuda.get_device_name()} torch {torch.__version__}")
    B = 32 if args.quick else 256
    T, C, H, D = 197, 768, 12, 64
    N = B * T
    P = 8_000_000 if args.quick else 86_192_640
    rnd = lambda *s, dt=torch.float32: (torch.rand(*s, device=dev) * 2 - 1).to(dt)

    a = rnd(1 << 28)
    b = torch.empty_like(a)
    report("copy_1GiB", time_ms(it, lambda: b.copy_(a)), 0, 2.0 * a.numel() * 4)
    del a, b
    images = rnd(B, 3, 224, 224)
    report("patchify_copy", time_ms(it, lambda: images.view(B, 3, 14, 16, 14, 16).permute(0, 2, 4, 1, 3, 5)
                                     .contiguous()), 0, 2.0 * images.numel() * 4)
    del images
    for name, M, K, Nn, dt in [("gemm_bf16_qkv", N, C, 3 * C, torch.bfloat16),
                               ("gemm_bf16_fc1", N, C, 4 * C, torch.bfloat16),
                               ("gemm_bf16_fc2", N, 4 * C, C, torch.bfloat16),
                               ("gemm_bf16_8192", 8192, 8192, 8192, torch.bfloat16),
                               ("gemm_f32_fc1", N, C, 4 * C, torch.float32)]:
        x, w = rnd(M, K, dt=dt), rnd(K, Nn, dt=dt)
        report(name, time_ms(it, lambda: x @ w), 2.0 * M * K * Nn, 0)
    r, h, w, b = rnd(N, C), rnd(N, 4 * C, dt=torch.bfloat16), rnd(C, 4 * C), rnd(C)
    with torch.autocast("cuda", dtype=torch.bfloat16):  # the residual stream f32, the product bf16
        report("fc2_into_residual", time_ms(it, lambda: r + F.linear(h, w, b)), 2.0 * N * 4 * C * C, 0)
    del r, h, w, b
    # fc1 forward and backward under autocast (f32 masters): the gradients of the input, weight and bias
    xl = rnd(N, C, dt=torch.bfloat16).requires_grad_()
    wl, bl = rnd(4 * C, C).requires_grad_(), rnd(4 * C).requires_grad_()
    gl = rnd(N, 4 * C, dt=torch.bfloat16)

    def linear_fwd_bwd():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = F.linear(xl, wl, bl)
        torch.autograd.grad(y, (xl, wl, bl), gl)

    report("linear_fc1_fwd_bwd", time_ms(it, linear_fwd_bwd), 3 * 2.0 * N * C * 4 * C, 0)
    del xl, wl, bl, gl
    # weight gradients of qkv and the output projection: the product, and with the bias's column sums
    for name, out in [("qkv", 3 * C), ("proj", C)]:
        gy, xw = rnd(N, out, dt=torch.bfloat16), rnd(N, C, dt=torch.bfloat16)
        report(f"wgrad_{name}", time_ms(it, lambda: gy.t() @ xw), 2.0 * N * C * out, 0)
        report(f"wgrad_{name}_bias", time_ms(it, lambda: (gy.t() @ xw, gy.sum(0))), 2.0 * N * C * out, 0)
        del gy, xw
    bf = torch.bfloat16
    x, r = rnd(N, C, dt=bf), rnd(N, C, dt=bf)
    w, bias = rnd(C, dt=bf), rnd(C, dt=bf)
    act = N * C * 2.0
    report("layer_norm_fwd", time_ms(it, lambda: F.layer_norm(x, (C,), w, bias, 1e-5)), 0, 2 * act)
    xg = x.clone().requires_grad_()
    wg, bg = w.clone().requires_grad_(), bias.clone().requires_grad_()
    y = F.layer_norm(xg, (C,), wg, bg, 1e-5)
    report("layer_norm_bwd", time_ms(it, lambda: torch.autograd.grad(y, (xg, wg, bg), r, retain_graph=True)), 0, 3 * act)
    report("residual_add", time_ms(it, lambda: x + r), 0, 3 * act)
    h = rnd(N, 4 * C, dt=bf)
    report("gelu_fwd", time_ms(it, lambda: F.gelu(h)), 0, 2 * 4 * act)
    gh = rnd(N, 4 * C, dt=bf)
    report("gelu_bwd", time_ms(it, lambda: torch.ops.aten.gelu_backward(gh, h)), 0, 3 * 4 * act)
    report("bias_grad_sum", time_ms(it, lambda: h.sum(0)), 0, 4 * act)
    del xg, wg, bg, gh
    # the residual stream's LayerNorms as PyTorch's autocast runs them: in f32, then the product's cast;
    # backward in f32, then the sum into the stream's gradient
    x32 = rnd(N, C).requires_grad_()
    w32, b32 = rnd(C).requires_grad_(), rnd(C).requires_grad_()
    report("layer_norm_fwd_f32_in", time_ms(it, lambda: F.layer_norm(x32, (C,), w32, b32, 1e-5).to(bf)), 0,
           N * C * 6.0)
    y32 = F.layer_norm(x32, (C,), w32, b32, 1e-5)
    g32, stream = rnd(N, C), rnd(N, C)
    report("layer_norm_bwd_into_f32",
           time_ms(it, lambda: stream.add_(torch.autograd.grad(y32, (x32, w32, b32), g32, retain_graph=True)[0])),
           0, N * C * 14.0)
    del x32, w32, b32, y32, g32, stream
    s = rnd(B * H * T, T, dt=bf)
    report("softmax_fwd", time_ms(it, lambda: torch.softmax(s, -1)), 0, 2.0 * s.numel() * 2)
    del x, r, h, s, y
    p = torch.nn.Parameter(rnd(P))
    p.grad = rnd(P)
    opt = torch.optim.AdamW([p], lr=1e-4, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.1, fused=True)
    report("adamw_step", time_ms(it, opt.step), 0, 7.0 * P * 4)
    t = rnd(P)
    report("ema_update", time_ms(it, lambda: t.lerp_(p.detach(), 0.001)), 0, 3.0 * P * 4)
    AB = 32
    q, k, v, g = (rnd(AB, H, T, D, dt=bf) for _ in range(4))
    fwd = 4.0 * AB * H * T * T * D
    report("attention_fused_fwd", time_ms(it, lambda: F.scaled_dot_product_attention(q, k, v)), fwd, 0)
    qg, kg, vg = (z.clone().requires_grad_() for z in (q, k, v))

    def fwd_bwd():
        o = F.scaled_dot_product_attention(qg, kg, vg)
        torch.autograd.grad(o, (qg, kg, vg), g)

    sdpa = time_ms(it, fwd_bwd)
    report("attention_fwd_bwd", sdpa, 3.5 * fwd, 0)
    report("attention_fused_fwd_bwd", sdpa, 3.5 * fwd, 0)  # every aclip path against SDPA
    report("attention_composed_fwd_bwd", sdpa, 3.5 * fwd, 0)
    # A transformer block's attention as models run it: from the packed (B, T, 3W) projection to (B, T, W).
    qkv = rnd(AB, T, 3 * C, dt=bf).requires_grad_()
    go = rnd(AB, T, C, dt=bf)

    def packed_fwd_bwd():
        q, k, v = qkv.view(AB, T, 3, H, D).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v).permute(0, 2, 1, 3).reshape(AB, T, C)
        torch.autograd.grad(o, qkv, go)

    report("self_attention_fwd_bwd", time_ms(it, packed_fwd_bwd), 3.5 * fwd, 0)
    del qkv, go
    # The EMA teacher's CLS rows of the attention probabilities at batch B, from a packed projection.
    with torch.no_grad():
        qkv = rnd(B, T, 3, H, D, dt=bf)
        q, k = qkv[:, :, 0].permute(0, 2, 1, 3), qkv[:, :, 1].permute(0, 2, 1, 3)
        cls = lambda: torch.softmax((q[:, :, :1] * D ** -0.5) @ k.transpose(-2, -1), -1).squeeze(2)
        report("attention_cls_probs", time_ms(it, cls), 0, B * H * T * D * 2.0)
    # The text tower's token embedding backward: 77 tokens a text, the last 56 padding (token 0).
    Tt, V, W = 77, 49408, 512
    ids = torch.zeros(B, Tt, dtype=torch.int64)
    for i in range(B):
        for j in range(21):
            ids[i, j] = 1 + (i * 31 + j * 17) % (V - 1)
    ids = ids.reshape(-1).to(dev)
    g = rnd(B * Tt, W)
    report("embedding_bwd", time_ms(it, lambda: torch.ops.aten.embedding_dense_backward(g, ids, V, -1, False)),
           0, 2.0 * B * Tt * W * 4)


if __name__ == "__main__":
    main()
