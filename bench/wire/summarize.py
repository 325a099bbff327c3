#!/usr/bin/env python3
"""runs.csv of bench/wire/run.sh -> a Markdown summary: per configuration the
median and the range (min-max) over the repetitions, and ratios against the
baselines of the same repetition (then their median and range)."""
import csv
import statistics
import sys
from collections import defaultdict


def num(s):
    return float(s) if s not in ("", None) else None


rows = list(csv.DictReader(open(sys.argv[1])))
by = defaultdict(dict)          # config -> rep -> row
order = []
for r in rows:
    if r["config"] not in order:
        order.append(r["config"])
    by[r["config"]][r["rep"]] = r


def stat(vals, fmt="{:.0f}"):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    m = statistics.median(vals)
    return f"{fmt.format(m)} ({fmt.format(min(vals))}-{fmt.format(max(vals))})"


def ratio(cfg, field, base_cfg, base_field):
    out = []
    for rep, r in by[cfg].items():
        b = by.get(base_cfg, {}).get(rep)
        if b is None:
            continue
        x, y = num(r[field]), num(b[base_field])
        if x is not None and y:
            out.append(x / y)
    return out


reps = sorted({r["rep"] for r in rows})
print(f"# The cost on the wire: {len(reps)} repetitions\n")
print("Median (min-max) over the repetitions; ratios are taken within each repetition, then summarised.\n")
def sum_ratio(cfg):
    """(XDP + TC) / (empty XDP + empty TC) of the same repetition: what a forwarded packet pays in both."""
    out = []
    for rep, r in by[cfg].items():
        b = by.get("empty", {}).get(rep)
        if b is None:
            continue
        x, t, ex, et = num(r["xdp_ns"]), num(r["tc_ns"]), num(b["xdp_ns"]), num(b["tc_ns"])
        if None not in (x, t, ex, et) and ex + et:
            out.append((x + t) / (ex + et))
    return out


print("| configuration | sink kpps | x none | XDP ns/pkt | x empty XDP | TC ns/pkt | x empty TC | TC x empty XDP "
      "| XDP+TC x empty XDP+TC |")
print("|---|---|---|---|---|---|---|---|---|")
for cfg in order:
    rs = by[cfg].values()
    pps = [num(r["sink_pps"]) / 1000 for r in rs]
    xdp = [num(r["xdp_ns"]) for r in rs]
    tc = [num(r["tc_ns"]) for r in rs]
    print(f"| {cfg} | {stat(pps)} | {stat(ratio(cfg, 'sink_pps', 'none', 'sink_pps'), '{:.2f}')} "
          f"| {stat(xdp, '{:.1f}')} | {stat(ratio(cfg, 'xdp_ns', 'empty', 'xdp_ns'), '{:.2f}')} "
          f"| {stat(tc, '{:.1f}')} | {stat(ratio(cfg, 'tc_ns', 'empty', 'tc_ns'), '{:.2f}')} "
          f"| {stat(ratio(cfg, 'tc_ns', 'empty', 'xdp_ns'), '{:.2f}')} | {stat(sum_ratio(cfg), '{:.2f}')} |")
loads = [num(r["load1"]) for r in rows]
print(f"\nLoad average (1 min) while measuring: {stat(loads, '{:.2f}')}.")
