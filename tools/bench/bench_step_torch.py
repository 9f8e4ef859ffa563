#!/usr/bin/env python3
"""bench_step_torch.py: the PyTorch side of tools/bench/compare_step.sh: one A-CLIP training step of the
reference implementation (tools/reference/aclip_reference.py) with the quickstart's shapes, batch 64."""
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reference"))
import aclip_reference as ref  # noqa: E402

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
c = dict(ref.CFG, image=64, patch=8, vwidth=96, vlayers=3, vheads=4, embed=64, context=24, vocab=595, twidth=64,
         tlayers=2, theads=4, simclr_hidden=128, simclr_dim=64, byol_hidden=128, byol_dim=64, batch=64, orig=96)
gen = torch.Generator().manual_seed(0)
params, buffers = ref.make_weights(c, gen)
for k in ref.ema_names(params):
    params["ema." + k] = params[k].clone()
for k in [k for k in buffers if k.startswith("ssl.byol_projector.")]:
    buffers["ema." + k] = buffers[k].clone()
batch = ref.make_batch(c, gen)
for k, v in params.items():
    if not (k.startswith("ema.") or k.startswith("visual.conv1.")):
        v.requires_grad_()
opt = torch.optim.AdamW(ref.param_groups(params, 0.1), lr=1e-4, betas=(0.9, 0.98), eps=1e-8)
ms = []
for step in range(13):
    t0 = time.perf_counter()
    opt.zero_grad()
    terms, _, _, _ = ref.step_forward(params, buffers, batch, 0.99, c)
    terms["loss"].backward()
    opt.step()
    if step >= 3:
        ms.append((time.perf_counter() - t0) * 1e3)
print(f"torch {statistics.median(ms):.1f} ms/step (median of {len(ms)}, batch 64, {torch.get_num_threads()} threads)")
