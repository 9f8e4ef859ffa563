#!/usr/bin/env python3
"""bench_data_torch.py SHARD: the PIL + torchvision side of tools/bench/compare_data.sh. One thread: decode,
two RandomResizedCrop(224, scale 0.5-1) views and the zoom-out crop covering both, ColorJitter(0.4, 0.4,
0.2, 0.1) p 0.8, grayscale p 0.2, Gaussian blur p 0.1, solarize p 0.2 on the views, ToTensor, Normalize,
as A-CLIP's datasets.py and main.py do. Prints samples per second per core."""
import io
import random
import sys
import tarfile
import time

import torch
from PIL import Image, ImageFilter, ImageOps
from torchvision import transforms as T

torch.set_num_threads(1)
norm = T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
color = T.Compose([T.RandomApply([T.ColorJitter(0.4, 0.4, 0.2, 0.1)], p=0.8), T.RandomGrayscale(p=0.2),
                   T.RandomApply([T.Lambda(lambda im: im.filter(ImageFilter.GaussianBlur(random.uniform(0.1, 2.0))))],
                                 p=0.1),
                   T.RandomApply([T.Lambda(ImageOps.solarize)], p=0.2), T.ToTensor(), norm])
plain = T.Compose([T.ToTensor(), norm])


def three_crops(img):
    W, H = img.size
    boxes = [T.RandomResizedCrop.get_params(img, (0.5, 1.0), (3 / 4, 4 / 3)) for _ in range(2)]
    top = min(b[0] for b in boxes)
    left = min(b[1] for b in boxes)
    bottom = max(b[0] + b[2] for b in boxes)
    right = max(b[1] + b[3] for b in boxes)
    nt, nl = random.randint(0, top), random.randint(0, left)
    boxes.append((nt, nl, random.randint(bottom - nt, H - nt), random.randint(right - nl, W - nl)))
    crops = [img.resize((224, 224), Image.BILINEAR, box=(l, t, l + w, t + h)) for t, l, h, w in boxes]
    return color(crops[0]), color(crops[1]), plain(crops[2])


def main():
    with tarfile.open(sys.argv[1]) as tar:
        images = [tar.extractfile(m).read() for m in tar.getmembers() if m.name.endswith(".jpg")]
    best = 1e30
    for _ in range(3):
        t0 = time.perf_counter()
        for b in images:
            three_crops(Image.open(io.BytesIO(b)).convert("RGB"))
        best = min(best, time.perf_counter() - t0)
    print(f"torchvision {len(images) / best:.1f} samples/s/core ({len(images)} samples)")


if __name__ == "__main__":
    main()
