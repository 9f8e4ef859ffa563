#!/usr/bin/env python3
"""aclip_reference.py: A-CLIP in plain PyTorch, written from ../shared/docs/aclip-method.md (sections 1
and 3 to 6), and the fixture it writes for the engine's model tests: tests/fixtures/aclip_tiny.safetensors.

Parameters live in one dict keyed by the names of architecture.md (OpenAI CLIP keys, ema.*, ssl.*), so
the C++ model loads them by name. The fixture holds a tiny configuration (32x32 images, patch 4, width 32,
2 layers, text context 16, batch 4): the weights, the three crops and their boxes, the token ids, the EMA
attention score and each view's kept patches, every loss term and every parameter gradient of the first
step, then the losses of 5 AdamW steps and the EMA and online weights after them.

Run: python3 tools/reference/aclip_reference.py   (Debian's python3-torch)
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_io  # noqa: E402

CFG = dict(image=32, patch=4, vwidth=32, vlayers=2, vheads=2, embed=24, context=16, vocab=100, twidth=32,
           tlayers=2, theads=2, simclr_hidden=40, simclr_dim=16, byol_hidden=36, byol_dim=12, batch=4,
           orig=48, block=2, keep_ratio=0.5, simclr_tau=0.1, ema_base=0.5, steps=5, lr=2e-3, wd=0.5)
VISION_EPS, TEXT_EPS, BN_EPS = 1e-6, 1e-5, 1e-5


# ---------------------------------------------------------------------------------------------- weights

def block_params(prefix, width, gen):
    n = lambda *s, std=0.05: torch.randn(*s, generator=gen) * std
    return {
        f"{prefix}.ln_1.weight": 1 + n(width), f"{prefix}.ln_1.bias": n(width),
        f"{prefix}.attn.in_proj_weight": n(3 * width, width, std=0.15), f"{prefix}.attn.in_proj_bias": n(3 * width),
        f"{prefix}.attn.out_proj.weight": n(width, width, std=0.15), f"{prefix}.attn.out_proj.bias": n(width),
        f"{prefix}.ln_2.weight": 1 + n(width), f"{prefix}.ln_2.bias": n(width),
        f"{prefix}.mlp.c_fc.weight": n(4 * width, width, std=0.15), f"{prefix}.mlp.c_fc.bias": n(4 * width),
        f"{prefix}.mlp.c_proj.weight": n(width, 4 * width, std=0.1), f"{prefix}.mlp.c_proj.bias": n(width),
    }


def bn_mlp_params(prefix, dims, bias, gen):
    """Linear layers fc1..fcK between dims, with BatchNorm bn1..bn(K-1) after all but the last."""
    p, b = {}, {}
    for i in range(len(dims) - 1):
        p[f"{prefix}.fc{i + 1}.weight"] = torch.randn(dims[i + 1], dims[i], generator=gen) / math.sqrt(dims[i])
        if bias:
            p[f"{prefix}.fc{i + 1}.bias"] = torch.randn(dims[i + 1], generator=gen) * 0.05
        if i < len(dims) - 2:
            p[f"{prefix}.bn{i + 1}.weight"] = 1 + torch.randn(dims[i + 1], generator=gen) * 0.05
            p[f"{prefix}.bn{i + 1}.bias"] = torch.randn(dims[i + 1], generator=gen) * 0.05
            b[f"{prefix}.bn{i + 1}.running_mean"] = torch.zeros(dims[i + 1])
            b[f"{prefix}.bn{i + 1}.running_var"] = torch.ones(dims[i + 1])
            b[f"{prefix}.bn{i + 1}.num_batches_tracked"] = torch.zeros((), dtype=torch.int64)
    return p, b


def make_weights(c, gen):
    W, T, E, P, G = c["vwidth"], c["twidth"], c["embed"], c["patch"], c["image"] // c["patch"]
    n = lambda *s, std: torch.randn(*s, generator=gen) * std
    params = {"visual.conv1.weight": n(W, 3, P, P, std=0.1), "visual.conv1.bias": n(W, std=0.05),
              "visual.class_embedding": n(W, std=0.1), "visual.positional_embedding": n(1 + G * G, W, std=0.1)}
    for i in range(c["vlayers"]):
        params.update(block_params(f"visual.transformer.resblocks.{i}", W, gen))
    params.update({"visual.ln_post.weight": 1 + n(W, std=0.05), "visual.ln_post.bias": n(W, std=0.05),
                   "visual.proj": n(W, E, std=W ** -0.5),
                   "token_embedding.weight": n(c["vocab"], T, std=0.1),
                   "positional_embedding": n(c["context"], T, std=0.05)})
    for i in range(c["tlayers"]):
        params.update(block_params(f"transformer.resblocks.{i}", T, gen))
    params.update({"ln_final.weight": 1 + n(T, std=0.05), "ln_final.bias": n(T, std=0.05),
                   "text_projection": n(T, E, std=T ** -0.5), "logit_scale": torch.tensor(math.log(1 / 0.07))})
    buffers = {}
    for name, dims, bias in (("ssl.simclr_mlp", [W, c["simclr_hidden"], c["simclr_hidden"], c["simclr_dim"]], True),
                             ("ssl.byol_projector", [W, c["byol_hidden"], c["byol_dim"]], False),
                             ("ssl.byol_predictor", [c["byol_dim"], c["byol_hidden"], c["byol_dim"]], False)):
        p, b = bn_mlp_params(name, dims, bias, gen)
        params.update(p)
        buffers.update(b)
    return params, buffers


def ema_names(params):
    """The online names the EMA follows: the vision tower, the text blocks and projection, the BYOL projector."""
    return [k for k in params if k.startswith("visual.") or k.startswith("transformer.")
            or k == "text_projection" or k.startswith("ssl.byol_projector.")]


# ---------------------------------------------------------------------------------------------- model

def block(p, prefix, x, heads, eps, act, causal, probs_out=None):
    B, T, W = x.shape
    y = F.layer_norm(x, (W,), p[f"{prefix}.ln_1.weight"], p[f"{prefix}.ln_1.bias"], eps)
    qkv = F.linear(y, p[f"{prefix}.attn.in_proj_weight"], p[f"{prefix}.attn.in_proj_bias"])
    q, k, v = qkv.view(B, T, 3, heads, W // heads).permute(2, 0, 3, 1, 4)
    s = q @ k.transpose(-2, -1) / math.sqrt(W // heads)
    if causal:
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    a = torch.softmax(s, -1)
    if probs_out is not None:
        probs_out.append(a)
    o = (a @ v).permute(0, 2, 1, 3).reshape(B, T, W)
    x = x + F.linear(o, p[f"{prefix}.attn.out_proj.weight"], p[f"{prefix}.attn.out_proj.bias"])
    y = F.layer_norm(x, (W,), p[f"{prefix}.ln_2.weight"], p[f"{prefix}.ln_2.bias"], eps)
    h = act(F.linear(y, p[f"{prefix}.mlp.c_fc.weight"], p[f"{prefix}.mlp.c_fc.bias"]))
    return x + F.linear(h, p[f"{prefix}.mlp.c_proj.weight"], p[f"{prefix}.mlp.c_proj.bias"])


def vision(p, prefix, images, c, keep=None, want_attention=False):
    """Returns (CLS after ln_post, its projection, attention score or None). keep: (B, K) patch indices."""
    B, P, W = images.shape[0], c["patch"], c["vwidth"]
    G = c["image"] // P
    x = images.view(B, 3, G, P, G, P).permute(0, 2, 4, 1, 3, 5).reshape(B, G * G, 3 * P * P)
    x = F.linear(x, p[f"{prefix}.conv1.weight"].reshape(W, -1), p[f"{prefix}.conv1.bias"])
    x = x + p[f"{prefix}.positional_embedding"][1:]
    if keep is not None:
        x = torch.gather(x, 1, keep.unsqueeze(-1).expand(-1, -1, W))
    cls = (p[f"{prefix}.class_embedding"] + p[f"{prefix}.positional_embedding"][0]).expand(B, 1, W)
    x = torch.cat([cls, x], 1)
    probs = []
    for i in range(c["vlayers"]):
        x = block(p, f"{prefix}.transformer.resblocks.{i}", x, c["vheads"], VISION_EPS, F.gelu, False,
                  probs if want_attention else None)
    cls_out = F.layer_norm(x[:, 0], (W,), p[f"{prefix}.ln_post.weight"], p[f"{prefix}.ln_post.bias"], VISION_EPS)
    score = None
    if want_attention:  # mean over layers, then heads, of the CLS row over patch keys
        score = torch.stack([a[:, :, 0, 1:] for a in probs]).mean(0).mean(1)
    return cls_out, cls_out @ p[f"{prefix}.proj"], score


def text(p, ids, c, blocks_prefix="transformer", projection="text_projection"):
    T = c["twidth"]
    x = F.embedding(ids, p["token_embedding.weight"]) + p["positional_embedding"][: ids.shape[1]]
    for i in range(c["tlayers"]):
        x = block(p, f"{blocks_prefix}.resblocks.{i}", x, c["theads"], TEXT_EPS,
                  lambda h: h * torch.sigmoid(1.702 * h), True)
    x = F.layer_norm(x, (T,), p["ln_final.weight"], p["ln_final.bias"], TEXT_EPS)
    return x[torch.arange(ids.shape[0]), ids.argmax(-1)] @ p[projection]


def bn_mlp(p, buffers, prefix, x, layers):
    for i in range(1, layers):
        x = F.linear(x, p[f"{prefix}.fc{i}.weight"], p.get(f"{prefix}.fc{i}.bias"))
        x = F.batch_norm(x, buffers[f"{prefix}.bn{i}.running_mean"], buffers[f"{prefix}.bn{i}.running_var"],
                         p[f"{prefix}.bn{i}.weight"], p[f"{prefix}.bn{i}.bias"], training=True, momentum=0.1,
                         eps=BN_EPS)
        buffers[f"{prefix}.bn{i}.num_batches_tracked"] += 1
        x = F.relu(x)
    return F.linear(x, p[f"{prefix}.fc{layers}.weight"], p.get(f"{prefix}.fc{layers}.bias"))


# ---------------------------------------------------------------------------------------------- mask

def view_keep(score, boxes, view, c):
    """Section 4.2-4.3: the EMA score mapped into the view's box, pooled over blocks, the top squares kept."""
    G, blk = c["image"] // c["patch"], c["block"]
    S = G // blk
    keep_sq = min(S * S, int(S * S * c["keep_ratio"]) + 1)
    out = []
    for b in range(score.shape[0]):
        et, el, eh, ew = boxes[b, 2].tolist()
        ot, ol, oh, ow = boxes[b, view].tolist()
        m = F.interpolate(score[b].view(1, 1, G, G), size=(eh, ew), mode="bilinear", align_corners=False)
        crop = torch.zeros(1, 1, oh, ow)
        top, left = ot - et, ol - el
        r0, r1, c0, c1 = max(top, 0), min(top + oh, eh), max(left, 0), min(left + ow, ew)
        if r1 > r0 and c1 > c0:
            crop[:, :, r0 - top:r1 - top, c0 - left:c1 - left] = m[:, :, r0:r1, c0:c1]
        r = F.interpolate(crop, size=(G, G), mode="bilinear", align_corners=False)
        sq = F.avg_pool2d(r, blk).flatten()
        order = torch.sort(sq, descending=True, stable=True).indices[:keep_sq]  # ties: lower index first
        patches = sorted(((int(s) // S) * blk + dy) * G + (int(s) % S) * blk + dx
                         for s in order for dy in range(blk) for dx in range(blk))
        out.append(patches)
    return torch.tensor(out, dtype=torch.int64)


# ---------------------------------------------------------------------------------------------- losses

def clip_loss(img, txt, logit_scale):
    img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    logits = logit_scale.exp() * img @ txt.t()
    labels = torch.arange(img.shape[0])
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2


def simclr_loss(a, b, tau):
    qa, qb = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    n = a.shape[0]
    big = torch.eye(n) * 1e9
    labels = torch.arange(n)
    la = F.cross_entropy(torch.cat([qa @ qb.t() / tau, qa @ qa.t() / tau - big], 1), labels)
    lb = F.cross_entropy(torch.cat([qb @ qa.t() / tau, qb @ qb.t() / tau - big], 1), labels)
    return (la + lb) / 2


def byol_loss(pred, target):
    t = F.normalize(target.detach(), dim=-1).repeat(pred.shape[0] // target.shape[0], 1)
    return (2 - 2 * (F.normalize(pred, dim=-1) * t).sum(-1)).mean()


def step_forward(params, buffers, batch, m, c):
    """Section 3: EMA update, EMA forward, masks, online forward, losses."""
    B = c["batch"]
    with torch.no_grad():
        for k in ema_names(params):
            params["ema." + k].mul_(m).add_(params[k], alpha=1 - m)
        ema_cls, _, score = vision(params, "ema.visual", batch["ema_view"], c, want_attention=True)
        target = bn_mlp(params, buffers, "ema.ssl.byol_projector", ema_cls, 2)
    keep1 = view_keep(score, batch["boxes"], 0, c)
    keep2 = view_keep(score, batch["boxes"], 1, c)
    cls, embed, _ = vision(params, "visual", torch.cat([batch["view1"], batch["view2"]]), c,
                           keep=torch.cat([keep1, keep2]))
    txt = text(params, batch["text"], c)
    out = {"clip1": clip_loss(embed[:B], txt, params["logit_scale"]),
           "clip2": clip_loss(embed[B:], txt, params["logit_scale"])}
    z = bn_mlp(params, buffers, "ssl.simclr_mlp", cls, 3)
    out["simclr"] = simclr_loss(z[:B], z[B:], c["simclr_tau"])
    pred = bn_mlp(params, buffers, "ssl.byol_predictor", bn_mlp(params, buffers, "ssl.byol_projector", cls, 2), 2)
    out["byol"] = byol_loss(pred, target)
    out["loss"] = 0.5 * out["clip1"] + 0.5 * out["clip2"] + out["simclr"] + 2 * out["byol"]
    return out, score, keep1, keep2


# ---------------------------------------------------------------------------------------------- fixture

def make_batch(c, gen):
    B, S, O = c["batch"], c["image"], c["orig"]

    def rand_box():
        h, w = [int(torch.randint(O // 2, O + 1, (1,), generator=gen)) for _ in range(2)]
        return [int(torch.randint(0, O - h + 1, (1,), generator=gen)), int(torch.randint(0, O - w + 1, (1,), generator=gen)), h, w]

    boxes = []
    for _ in range(B):
        v1, v2 = rand_box(), rand_box()
        top, left = min(v1[0], v2[0]), min(v1[1], v2[1])
        bottom, right = max(v1[0] + v1[2], v2[0] + v2[2]), max(v1[1] + v1[3], v2[1] + v2[3])
        # the union box, enlarged at random (section 2.2, intended algorithm)
        nt = int(torch.randint(0, top + 1, (1,), generator=gen))
        nl = int(torch.randint(0, left + 1, (1,), generator=gen))
        nh = int(torch.randint(bottom - nt, O - nt + 1, (1,), generator=gen))
        nw = int(torch.randint(right - nl, O - nl + 1, (1,), generator=gen))
        boxes.append([v1, v2, [nt, nl, nh, nw]])
    ids = torch.zeros(B, c["context"], dtype=torch.int64)
    for b in range(B):
        length = int(torch.randint(3, c["context"] - 1, (1,), generator=gen))
        ids[b, 0] = c["vocab"] - 2  # start of text
        ids[b, 1:length] = torch.randint(1, c["vocab"] - 2, (length - 1,), generator=gen)
        ids[b, length] = c["vocab"] - 1  # end of text: the largest id
    img = lambda: torch.randn(B, 3, S, S, generator=gen)
    return {"view1": img(), "view2": img(), "ema_view": img(), "boxes": torch.tensor(boxes, dtype=torch.int64),
            "text": ids}


def param_groups(params, wd):
    decay, no_decay = [], []
    for k, v in params.items():
        if k.startswith("ema.") or k.startswith("visual.conv1."):
            continue  # frozen: the EMA copies and the patch embedding
        excluded = "bias" in k or "ln" in k or "bn" in k or (v.ndim < 2 and not k.endswith("class_embedding"))
        (no_decay if excluded else decay).append(v)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def main():
    c = CFG
    gen = torch.Generator().manual_seed(0)
    params, buffers = make_weights(c, gen)
    for k in ema_names(params):
        params["ema." + k] = params[k].clone()
    for k in [k for k in buffers if k.startswith("ssl.byol_projector.")]:
        buffers["ema." + k] = buffers[k].clone()
    batch = make_batch(c, gen)
    out = {f"init.{k}": v.clone() for k, v in {**params, **buffers}.items()}
    out.update({f"batch.{k}": v for k, v in batch.items()})

    for k, v in params.items():
        if not (k.startswith("ema.") or k.startswith("visual.conv1.")):
            v.requires_grad_()
    opt = torch.optim.AdamW(param_groups(params, c["wd"]), lr=c["lr"], betas=(0.9, 0.98), eps=1e-8)
    losses = []
    for step in range(c["steps"]):
        m = 1 - (1 - c["ema_base"]) * (1 + math.cos(math.pi * step / c["steps"])) / 2
        opt.zero_grad()
        terms, score, keep1, keep2 = step_forward(params, buffers, batch, m, c)
        terms["loss"].backward()
        if step == 0:
            out.update({f"step0.{k}": v.detach() for k, v in terms.items()})
            out["step0.score"], out["step0.keep1"], out["step0.keep2"] = score, keep1, keep2
            out.update({f"grad.{k}": v.grad.clone() for k, v in params.items() if v.grad is not None})
        losses.append([float(terms[k]) for k in ("loss", "clip1", "clip2", "simclr", "byol")])
        opt.step()
        with torch.no_grad():
            params["logit_scale"].clamp_(0, math.log(100))
    out["steps.losses"] = torch.tensor(losses, dtype=torch.float64)  # (steps, 5): loss, clip1, clip2, simclr, byol
    out.update({f"final.{k}": v.detach().clone() for k, v in {**params, **buffers}.items()})
    path = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "aclip_tiny.safetensors")
    meta = {"generator": "tools/reference/aclip_reference.py", "torch": torch.__version__, "seed": "0"}
    meta.update({k: str(v) for k, v in c.items()})
    safetensors_io.save(path, out, meta)
    print(f"wrote {len(out)} tensors to {os.path.normpath(path)}; losses per step:")
    for row in losses:
        print("  " + " ".join(f"{x:.6f}" for x in row))


if __name__ == "__main__":
    main()
