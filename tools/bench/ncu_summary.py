#!/usr/bin/env python3
"""ncu_summary.py: one line per kernel from Nsight Compute's CSV details page, for tools/gpu_check.sh.

    ncu --import kernels.ncu-rep --csv --page details | python3 tools/bench/ncu_summary.py

For each kernel (by its function name, its longest launch profiled: the benchmark's case of that kernel, not
a smaller launch of it by a later case, as run 7's softmax row was) it prints the duration, how close the
kernel came to the memory and compute ceilings (Speed Of Light: DRAM and SM throughput, % of peak), the
L1 and L2 hit rates (a kernel that re-reads rows, as LayerNorm's, should hit), the achieved and theoretical
occupancy, and registers per thread: what decides whether a memory-bound kernel is waiting on memory,
on latency (too few warps) or on instructions. Plain Python, no packages; a metric ncu did not collect
prints as '-'.
"""
import csv
import sys

# (column title, metric name on the details page)
COLUMNS = [
    ("us", "Duration"),
    ("DRAM%", "DRAM Throughput"),
    ("SM%", "Compute (SM) Throughput"),
    ("L1hit%", "L1/TEX Hit Rate"),
    ("L2hit%", "L2 Hit Rate"),
    ("occ%", "Achieved Occupancy"),
    ("theo%", "Theoretical Occupancy"),
    ("regs", "Registers Per Thread"),
    ("block", "Block Size"),
]


def short_name(kernel):
    """'void ns::layer_norm_dx_kernel<float, ...>(...)' -> 'layer_norm_dx_kernel<float, ...>'."""
    name = kernel.replace("(anonymous namespace)::", "").split("(")[0].replace("void ", "").strip()
    head, _, args = name.partition("<")
    head = head.split("::")[-1]
    return head + ("<" + args if args else "")


def microseconds(metrics):
    """A launch's duration in microseconds, from its metrics; -1 when ncu did not collect it."""
    value, unit = metrics.get("Duration", ("", ""))
    scale = {"msecond": 1e3, "ms": 1e3, "nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0}
    try:
        return float(value.replace(",", "")) * scale[unit]
    except (KeyError, ValueError):
        return -1.0


def main():
    lines = [line for line in sys.stdin if line.startswith('"')]
    rows = list(csv.DictReader(lines))
    if not rows or "Metric Name" not in rows[0]:
        print("ncu_summary: no details rows in the input (ncu's first lines follow)")
        sys.stdout.writelines(lines[:20])
        return 1
    launches = {}  # short name -> {launch id: {metric: (value, unit)}}
    order = []
    for r in rows:
        name = short_name(r.get("Kernel Name", "?"))
        if name not in launches:
            order.append(name)
            launches[name] = {}
        metrics = launches[name].setdefault(r.get("ID", ""), {})
        metrics[r["Metric Name"]] = (r.get("Metric Value", ""), r.get("Metric Unit", ""))
        for key in ("Block Size", "Grid Size"):  # "(256, 1, 1)": the x extent
            if key in r:
                metrics[key] = (r[key].strip("()").split(",")[0], "")
    kernels = {name: max(launches[name].values(), key=microseconds) for name in order}
    width = min(60, max(len(n) for n in order))
    print(f"{'kernel':<{width}} " + " ".join(f"{title:>7}" for title, _ in COLUMNS))
    for name in order:
        values = []
        for title, metric in COLUMNS:
            value, unit = kernels[name].get(metric, ("-", ""))
            if title == "us":
                value = f"{microseconds(kernels[name]):.1f}"
            values.append(f"{value:>7}")
        print(f"{name[:width]:<{width}} " + " ".join(values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
