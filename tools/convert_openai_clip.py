#!/usr/bin/env python3
"""convert_openai_clip.py: an OpenAI CLIP or open_clip ViT state dict (.pt) to aclip's model file.

The state-dict names of OpenAI's CLIP are aclip's names (visual.*, transformer.*, token_embedding, ...), so
conversion is a selection and a cast: fp16 weights become f32, buffers that are not weights are dropped
(input_resolution, context_length, vocab_size, attn_mask), and the metadata that shapes cannot carry is
written beside them (architecture.md): QuickGELU, LayerNorm eps 1e-5, ln_pre, no patch bias, the heads
(width / 64 unless given), CLIP's mean and std, bicubic resizing, and a config naming the BPE merges.

Usage:
  tools/convert_openai_clip.py ViT-B-16.pt ViT-B-16.model.safetensors \\
      --merges ../shared/clip/bpe_simple_vocab_16e6.txt.gz
  build/aclip_embed --checkpoint ViT-B-16.model.safetensors --images cat.jpg --out e.safetensors

Needs PyTorch (Debian: python3-torch) to read the .pt file; OpenAI's released files are TorchScript
archives, open_clip's plain state dicts (possibly under "state_dict", with "module." prefixes).
"""
import argparse
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
import safetensors_io  # noqa: E402

CLIP_MEAN = "0.48145466,0.4578275,0.40821073"
CLIP_STD = "0.26862954,0.26130258,0.27577711"
NOT_WEIGHTS = {"input_resolution", "context_length", "vocab_size", "attn_mask"}
REQUIRED = ["visual.conv1.weight", "visual.class_embedding", "visual.positional_embedding", "visual.ln_pre.weight",
            "visual.ln_post.weight", "visual.proj", "token_embedding.weight", "positional_embedding",
            "ln_final.weight", "text_projection", "logit_scale"]


def fail(msg):
    sys.exit(f"convert_openai_clip: {msg}")


def load_state_dict(path):
    try:
        return torch.jit.load(path, map_location="cpu").state_dict()  # OpenAI's TorchScript archives
    except (RuntimeError, ValueError):
        pass
    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        fail(f"{path}: not a state dict or a TorchScript CLIP model")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}


def convert(sd, merges, vision_heads, text_heads, source):
    if any(k.startswith("visual.layer1.") for k in sd):
        fail(f"{source}: a ModifiedResNet image tower; aclip converts ViT models only")
    missing = [k for k in REQUIRED if k not in sd]
    if missing:
        fail(f"{source}: missing {', '.join(missing)} (is this a CLIP ViT state dict?)")
    tensors = {k: v.detach().float().contiguous() for k, v in sd.items()
               if k not in NOT_WEIGHTS and not k.endswith(".attn_mask") and torch.is_floating_point(v)}
    vwidth = tensors["visual.conv1.weight"].shape[0]
    twidth = tensors["ln_final.weight"].shape[0]
    grid = math.isqrt(tensors["visual.positional_embedding"].shape[0] - 1)
    patch = tensors["visual.conv1.weight"].shape[-1]
    vheads = vision_heads or max(vwidth // 64, 1)
    theads = text_heads or max(twidth // 64, 1)
    if vwidth % vheads or twidth % theads:
        fail(f"heads do not divide the widths: vision {vwidth} / {vheads}, text {twidth} / {theads}")
    context = tensors["positional_embedding"].shape[0]
    ini = (f"# converted from {os.path.basename(source)} by tools/convert_openai_clip.py\n"
           f"[data]\nmean = {CLIP_MEAN}\nstd = {CLIP_STD}\n"
           f"[tokenizer]\nmerges = {merges}\ncontext = {context}\ntruncate = eot\n")
    meta = {"vision.act": "quick_gelu", "text.act": "quick_gelu", "vision.heads": str(vheads),
            "text.heads": str(theads), "vision.ln_eps": "1e-05", "text.ln_eps": "1e-05", "vision.ln_pre": "true",
            "image.mean": CLIP_MEAN, "image.std": CLIP_STD, "image.resize": "bicubic",
            "tokenizer.truncate": "eot", "aclip.config": ini}
    summary = (f"ViT image {patch * grid}px patch {patch} width {vwidth} heads {vheads}, text width {twidth} "
               f"heads {theads} context {context} vocab {tensors['token_embedding.weight'].shape[0]}")
    return tensors, meta, summary


def main():
    ap = argparse.ArgumentParser(description="OpenAI CLIP / open_clip ViT .pt -> aclip .model.safetensors")
    ap.add_argument("input", help="the .pt file")
    ap.add_argument("output", help="NAME.model.safetensors")
    ap.add_argument("--merges", default="", help="the BPE merges file the tokenizer will use (stored in the config)")
    ap.add_argument("--vision-heads", type=int, default=0, help="attention heads of the image tower (default width/64)")
    ap.add_argument("--text-heads", type=int, default=0, help="attention heads of the text tower (default width/64)")
    args = ap.parse_args()
    if not os.path.isfile(args.input):
        fail(f"{args.input}: no such file")
    tensors, meta, summary = convert(load_state_dict(args.input), args.merges, args.vision_heads, args.text_heads,
                                     args.input)
    tmp = args.output + ".tmp"
    safetensors_io.save(tmp, tensors, meta)
    os.replace(tmp, args.output)  # atomic: a crash never leaves half a file
    print(f"wrote {args.output}: {len(tensors)} tensors; {summary}")


if __name__ == "__main__":
    main()
