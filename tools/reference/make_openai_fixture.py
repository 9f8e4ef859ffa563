#!/usr/bin/env python3
"""make_openai_fixture.py: the fixture that proves tools/convert_openai_clip.py and aclip's OpenAI variant.

A tiny CLIP is built in PyTorch with OpenAI's module layout (nn.MultiheadAttention blocks, QuickGELU,
ln_pre, a patch embedding without bias, a causal text transformer), randomly initialised and stored as
OpenAI does (fp16 state dict in a .pt file). The converter turns that file into
tests/fixtures/openai_tiny.model.safetensors; PyTorch then embeds three images and three texts with the
fp16-rounded weights in f32, and the L2-normalised embeddings go to tests/fixtures/openai_tiny_ref.safetensors.
The texts are tokenized by aclip_tokenize (proven exact against CLIP's golden tokenizations) with merges
learned by aclip_bpe_train, so both sides see the same ids. The C++ test loads the converted model as
aclip_embed does and must reproduce PyTorch's embeddings.

Run: python3 tools/reference/make_openai_fixture.py [BUILD_DIR]   (Debian's python3-torch; default build-test)
"""
import gzip
import os
import subprocess
import sys
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIX = os.path.join(ROOT, "tests", "fixtures")
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402

IMAGE, PATCH, VWIDTH, VLAYERS, VHEADS = 32, 8, 64, 2, 2
CONTEXT, TWIDTH, TLAYERS, THEADS, EMBED = 16, 64, 2, 2, 32
TEXTS = ["a red circle", "two blue squares on a wall", "a photo of a green star."]


class QuickGELU(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Block(nn.Module):
    def __init__(self, width, heads, mask=None):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, 4 * width)), ("gelu", QuickGELU()),
                                              ("c_proj", nn.Linear(4 * width, width))]))
        self.ln_2 = nn.LayerNorm(width)
        self.mask = mask

    def forward(self, x):  # x (T, B, W), sequence first as in OpenAI's code
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False, attn_mask=self.mask)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, width, layers, heads, mask=None):
        super().__init__()
        self.resblocks = nn.Sequential(*[Block(width, heads, mask) for _ in range(layers)])

    def forward(self, x):
        return self.resblocks(x)


class Visual(nn.Module):
    def __init__(self):
        super().__init__()
        grid = IMAGE // PATCH
        self.conv1 = nn.Conv2d(3, VWIDTH, PATCH, PATCH, bias=False)
        self.class_embedding = nn.Parameter(torch.randn(VWIDTH) * VWIDTH ** -0.5)
        self.positional_embedding = nn.Parameter(torch.randn(grid * grid + 1, VWIDTH) * VWIDTH ** -0.5)
        self.ln_pre = nn.LayerNorm(VWIDTH)
        self.transformer = Transformer(VWIDTH, VLAYERS, VHEADS)
        self.ln_post = nn.LayerNorm(VWIDTH)
        self.proj = nn.Parameter(torch.randn(VWIDTH, EMBED) * VWIDTH ** -0.5)

    def forward(self, x):
        x = self.conv1(x).flatten(2).permute(0, 2, 1)  # (B, N, W)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], 1) + self.positional_embedding
        x = self.transformer(self.ln_pre(x).permute(1, 0, 2)).permute(1, 0, 2)
        return self.ln_post(x[:, 0]) @ self.proj


class Clip(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.visual = Visual()
        mask = torch.full((CONTEXT, CONTEXT), float("-inf")).triu(1)
        self.transformer = Transformer(TWIDTH, TLAYERS, THEADS, mask)
        self.token_embedding = nn.Embedding(vocab, TWIDTH)
        self.positional_embedding = nn.Parameter(torch.randn(CONTEXT, TWIDTH) * 0.01)
        self.ln_final = nn.LayerNorm(TWIDTH)
        self.text_projection = nn.Parameter(torch.randn(TWIDTH, EMBED) * TWIDTH ** -0.5)
        self.logit_scale = nn.Parameter(torch.tensor(4.6052))
        self.register_buffer("attn_mask", mask, persistent=True)  # open_clip keeps one; the converter drops it

    def encode_text(self, ids):
        x = self.token_embedding(ids) + self.positional_embedding
        x = self.ln_final(self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2))
        return x[torch.arange(ids.shape[0]), ids.argmax(-1)] @ self.text_projection


def run(args, stdin=None):
    return subprocess.run(args, input=stdin, capture_output=True, text=True, check=True).stdout


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build-test")
    torch.manual_seed(0)
    merges = os.path.join(FIX, "openai_tiny_merges.txt")
    corpus = "\n".join(TEXTS * 3 + ["a photo of a cat", "red blue green squares circles stars wall"]) + "\n"
    run([os.path.join(build, "aclip_bpe_train"), "--out", merges, "--merges", "60"], corpus)
    vocab = 512 + sum(1 for line in open(merges) if not line.startswith("#version")) + 2
    model = Clip(vocab)
    with torch.no_grad():  # livelier weights than PyTorch's defaults, so every part matters
        for name, p in model.named_parameters():
            if p.dim() == 1 and name.endswith("bias"):
                p.normal_(0, 0.05)
            elif name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or "ln_" in name:
                p.normal_(1, 0.05)
    model.eval()
    pt = os.path.join(FIX, "openai_tiny.pt.tmp")
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}, pt)
    out = os.path.join(FIX, "openai_tiny.model.safetensors")
    print(run([sys.executable, os.path.join(ROOT, "tools", "convert_openai_clip.py"), pt, out,
               "--merges", "openai_tiny_merges.txt", "--vision-heads", str(VHEADS), "--text-heads", str(THEADS)]),
          end="")
    os.remove(pt)
    with torch.no_grad():  # the reference computes with exactly the weights the converter kept
        for p in model.parameters():
            p.copy_(p.half().float())
    # Three 32x32 images (no resizing on either side), stored as PNG (lossless).
    from PIL import Image
    gen = torch.Generator().manual_seed(1)
    images = []
    for i in range(3):
        pixels = (torch.rand(IMAGE, IMAGE, 3, generator=gen) * 255).to(torch.uint8)
        pixels[8 * i: 8 * i + 12, 4:20] = torch.tensor([220, 40 * i, 30], dtype=torch.uint8)
        path = os.path.join(FIX, f"openai_tiny_{i}.png")
        Image.fromarray(pixels.numpy()).save(path)
        images.append(pixels)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    x = (torch.stack(images).permute(0, 3, 1, 2).float() / 255 - mean) / std
    ids_text = run([os.path.join(build, "aclip_tokenize"), "--merges", merges, "--context", str(CONTEXT)],
                   "".join(f'"{t}"\n' for t in TEXTS))
    ids = torch.tensor([[int(v) for v in line.split()] for line in ids_text.strip().splitlines()])
    with torch.no_grad():
        img = F.normalize(model.visual(x), dim=-1)
        txt = F.normalize(model.encode_text(ids), dim=-1)
    safetensors_io.save(os.path.join(FIX, "openai_tiny_ref.safetensors"),
                        {"image_embeds": img, "text_embeds": txt, "text_ids": ids},
                        {"texts": "\n".join(TEXTS), "made_by": "tools/reference/make_openai_fixture.py"})
    print(f"wrote the fixture: vocab {vocab}, image embeddings {tuple(img.shape)}, text {tuple(txt.shape)}")


if __name__ == "__main__":
    main()
