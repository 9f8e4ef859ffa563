#!/usr/bin/env python3
"""ncu_summary.py: one line per kernel from Nsight Compute's CSV details page, for tools/gpu_check.sh.

    ncu --import kernels.ncu-rep --csv --page details | python3 tools/bench/ncu_summary.py

For each kernel (by its function name, the last launch profiled) it prints the duration, how close the
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


def main():
    lines = [line for line in sys.stdin if line.startswith('"')]
    rows = list(csv.DictReader(lines))
    if not rows or "Metric Name" not in rows[0]:
        print("ncu_summary: no details rows in the input (ncu's first lines follow)")
        sys.stdout.writelines(lines[:20])
        return 1
    kernels = {}  # short name -> {metric: (value, unit)}, the last launch of each
    order = []
    launch_of = {}
    for r in rows:
        name = short_name(r.get("Kernel Name", "?"))
        launch = r.get("ID", "")
        if name not in kernels:
            order.append(name)
        if launch_of.get(name) != launch:  # a later launch of the same kernel replaces the earlier
            kernels[name] = {}
            launch_of[name] = launch
        kernels[name][r["Metric Name"]] = (r.get("Metric Value", ""), r.get("Metric Unit", ""))
        for key in ("Block Size", "Grid Size"):  # "(256, 1, 1)": the x extent
            if key in r:
                kernels[name][key] = (r[key].strip("()").split(",")[0], "")
    width = min(60, max(len(n) for n in order))
    print(f"{'kernel':<{width}} " + " ".join(f"{title:>7}" for title, _ in COLUMNS))
    for name in order:
        values = []
        for title, metric in COLUMNS:
            value, unit = kernels[name].get(metric, ("-", ""))
            scale = {"msecond": 1e3, "ms": 1e3, "nsecond": 1e-3, "ns": 1e-3, "usecond": 1.0, "us": 1.0}
            if title == "us" and unit in scale:
                value = f"{float(value.replace(',', '')) * scale[unit]:.1f}"
            values.append(f"{value:>7}")
        print(f"{name[:width]:<{width}} " + " ".join(values))
    return 0


if __name__ == "__main__":
    sys.exit(main())
