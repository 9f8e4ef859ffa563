#!/usr/bin/env python3
"""plot_metrics.py: PNG curves of a training run from its metrics file (checkpoint.dir/metrics.jsonl).

One figure with a panel per quantity: every loss term (total, CLIP per view, SimCLR, BYOL), the learning
rate, the logit scale, the EMA momentum, throughput, and the evaluations (zero-shot top-1/top-5 and
retrieval R@1, online and EMA). Needs matplotlib (Debian: python3-matplotlib, installed by
tools/install_deps.sh); nothing else.

Usage: tools/plot_metrics.py runs/quickstart/metrics.jsonl [--out runs/quickstart/metrics.png]
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402

TRAIN_PANELS = [
    ("loss terms", ["loss", "clip1", "clip2", "simclr", "byol"]),
    ("learning rate", ["lr"]),
    ("logit scale", ["logit_scale"]),
    ("EMA momentum", ["ema_momentum"]),
    ("samples / s", ["samples_per_s"]),
]
EVAL_KEYS = [("top1", "zero-shot top-1"), ("top5", "zero-shot top-5"), ("i2t_r1", "image->text R@1"),
             ("t2i_r1", "text->image R@1")]


def read_metrics(path):
    train, evals = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"plot_metrics: {path}:{number}: not JSON ({e.msg})")
            (evals if "eval" in row else train).append(row)
    if not train and not evals:
        sys.exit(f"plot_metrics: {path}: no metrics (is this a metrics.jsonl of aclip_train?)")
    return train, evals


def plot(train, evals, out):
    panels = [(title, keys) for title, keys in TRAIN_PANELS if any(k in r for r in train for k in keys)]
    has_eval = any(r.get(k, -1) >= 0 for r in evals for k, _ in EVAL_KEYS)
    n = len(panels) + (1 if has_eval else 0)
    cols = 3
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax, (title, keys) in zip(flat, panels):
        for key in keys:
            pts = [(r["step"], r[key]) for r in train if r.get(key) is not None]  # null: not finite
            if pts:
                ax.plot(*zip(*pts), label=key, linewidth=1.4)
        ax.set_title(title)
        ax.set_xlabel("step")
        if len(keys) > 1:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if has_eval:
        ax = flat[len(panels)]
        for weights in sorted({r["eval"] for r in evals}):
            for key, label in EVAL_KEYS:
                pts = [(r["step"], 100 * r[key]) for r in evals if r["eval"] == weights and r.get(key, -1) >= 0]
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=f"{label} ({weights})", linewidth=1.2)
        ax.set_title("evaluation (%)")
        ax.set_xlabel("step")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax in flat[n:]:
        ax.axis("off")
    fig.tight_layout()
    tmp = out + ".tmp.png"
    fig.savefig(tmp, dpi=110)  # written aside, then renamed: a crash never leaves half a PNG
    os.replace(tmp, out)


def main():
    ap = argparse.ArgumentParser(description="PNG curves of an aclip_train metrics.jsonl")
    ap.add_argument("metrics", help="checkpoint.dir/metrics.jsonl")
    ap.add_argument("--out", help="output PNG (default: metrics.png beside the input)")
    args = ap.parse_args()
    if not os.path.isfile(args.metrics):
        sys.exit(f"plot_metrics: {args.metrics}: no such file")
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.metrics)), "metrics.png")
    train, evals = read_metrics(args.metrics)
    plot(train, evals, out)
    print(f"wrote {out} ({len(train)} training rows, {len(evals)} evaluations)")


if __name__ == "__main__":
    main()
