#!/usr/bin/env python3
"""make_image_fixtures.py: what PIL and torchvision compute for aclip's image operations.

- Resizing: PIL's Image.resize(size, BILINEAR, box=...), the resampling torchvision's RandomResizedCrop
  and Resize apply to the PIL images A-CLIP trains on, for shrinking, enlarging, fractional and identity
  boxes of one 61x47 image (`resize.src`, `resize.N.box` as top, left, height, width, `resize.N.out`).
- Colour: torchvision's functional colour operations on a float (3, H, W) image (`color.src`,
  `color.NAME.out`, `color.NAME.arg`).
- CMYK: a 4-channel JPEG as PIL writes it (Adobe's inverted polarity) and the RGB image PIL's
  Image.open(...).convert("RGB") makes of it, as A-CLIP's loader does (`cmyk.jpeg` bytes, `cmyk.rgb`).

tests/data/test_image_fixtures.cpp compares data/resize.cpp, data/color.cpp and data/image.cpp with them.
Run: /usr/bin/python3 tools/reference/make_image_fixtures.py   (Debian's python3-torch, -torchvision, -pil)
"""
import io
import os
import sys

import numpy as np
import PIL
import torch
import torchvision
import torchvision.transforms.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402

RESIZE_CASES = [  # (top, left, height, width) in source pixels, (out_h, out_w)
    ((0, 0, 47, 61), (20, 24)),  # shrink about 2.4x
    ((3.5, 2.25, 30.0, 41.5), (13, 17)),  # fractional box
    ((5, 7, 12, 10), (30, 25)),  # enlarge
    ((0, 0, 47, 61), (47, 61)),  # identity
    ((10, 0, 37, 61), (9, 40)),  # shrink 4x one way, 1.5x the other
    ((40.5, 55.5, 6.5, 5.5), (4, 3)),  # a corner
]

COLOR_CASES = [  # (name, torchvision function, argument)
    ("brightness_up", F.adjust_brightness, 1.3),
    ("brightness_down", F.adjust_brightness, 0.6),
    ("contrast_down", F.adjust_contrast, 0.7),
    ("contrast_up", F.adjust_contrast, 1.4),
    ("saturation_down", F.adjust_saturation, 0.8),
    ("saturation_up", F.adjust_saturation, 1.2),
    ("hue_minus", F.adjust_hue, -0.1),
    ("hue_small", F.adjust_hue, 0.037),
    ("hue_plus", F.adjust_hue, 0.1),
    ("grayscale", lambda x, _: F.rgb_to_grayscale(x, num_output_channels=3), 0.0),
    ("solarize", F.solarize, 128 / 255),
]


def main():
    rng = np.random.default_rng(0)
    H, W = 47, 61
    y, x = np.mgrid[0:H, 0:W]
    smooth = np.stack([255 * x / W, 255 * y / H, 128 + 100 * np.sin(x / 5.0) * np.cos(y / 7.0)], -1)
    src = np.clip(smooth + rng.normal(0, 20, (H, W, 3)), 0, 255).astype(np.uint8)  # (H, W, 3)
    tensors = {"resize.src": torch.from_numpy(src)}
    for i, ((top, left, h, w), (oh, ow)) in enumerate(RESIZE_CASES):
        out = Image.fromarray(src).resize((ow, oh), Image.BILINEAR, box=(left, top, left + w, top + h))
        tensors[f"resize.{i}.box"] = torch.tensor([top, left, h, w], dtype=torch.float64)
        tensors[f"resize.{i}.out"] = torch.from_numpy(np.asarray(out).copy())  # (oh, ow, 3) uint8
    torch.manual_seed(0)
    img = torch.rand(3, 11, 13)  # (3, H, W) in [0, 1]
    tensors["color.src"] = img
    for name, fn, arg in COLOR_CASES:
        tensors[f"color.{name}.out"] = fn(img.clone(), arg)
        tensors[f"color.{name}.arg"] = torch.tensor([arg], dtype=torch.float64)
    cmyk = np.concatenate([src, (255 - src[..., :1]) // 3], -1)  # (H, W, 4): ink, some black
    buf = io.BytesIO()
    Image.frombytes("CMYK", (W, H), cmyk.tobytes()).save(buf, "JPEG", quality=90)
    tensors["cmyk.jpeg"] = torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)
    rgb = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    tensors["cmyk.rgb"] = torch.from_numpy(np.asarray(rgb).copy())  # (H, W, 3) uint8
    path = os.path.join(ROOT, "tests", "fixtures", "image_ops.safetensors")
    safetensors_io.save(path, tensors, {"generator": "tools/reference/make_image_fixtures.py",
                                        "pil": PIL.__version__, "torchvision": torchvision.__version__,
                                        "torch": torch.__version__, "seed": 0})
    print(f"wrote {path}: {len(RESIZE_CASES)} resize cases, {len(COLOR_CASES)} colour cases, a CMYK JPEG")


if __name__ == "__main__":
    main()
