#!/usr/bin/python3
"""Plots the isolation wire tests' measurements (docs/isolation.md).

    build/tests/wire/wire_test --gtest_filter='Rates/IsolationWire*:IsolationNat.*' 2>&1 | tee iso.log
    bench/isolation/plot.py iso.log docs/img/isolation.png

Reads the tests' "[ measured ]" lines; draws host A's share against host B
(eight flows) without and with `isolate saddr`, the nine flows' shares, and a
sparse flow's one-way p99 idle, under bulk without isolation and with it.
"""
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def parse(lines):
    hosts, flows, sparse, nat = {}, {}, {}, None
    for line in lines:
        if "[ measured ]" not in line:
            continue
        m = re.search(r"\] (\d+)mbit (no isolation|isolate saddr): host A \(1 flow\) share ([\d.]+)", line)
        if m:
            hosts[(int(m[1]), m[2])] = float(m[3])
        m = re.search(r"\] (\d+)mbit: 9 flows, shares ([\d. ]+), Jain", line)
        if m:
            flows[int(m[1])] = [float(x) for x in m[2].split()]
        m = re.search(r"\] (\d+)mbit no isolation: sparse flow one-way p50/p99 under 8 bulk flows [\d.]+/([\d.]+)", line)
        if m:
            sparse.setdefault(int(m[1]), {})["fifo"] = float(m[2])
        m = re.search(r"\] (\d+)mbit: sparse flow one-way p50/p99 idle [\d.]+/([\d.]+) ms, under 8 bulk flows [\d.]+/([\d.]+)", line)
        if m:
            sparse.setdefault(int(m[1]), {}).update(idle=float(m[2]), isolated=float(m[3]))
        m = re.search(r"host A's share ([\d.]+) with `isolate saddr nat`, ([\d.]+) with `isolate saddr`", line)
        if m:
            nat = (float(m[1]), float(m[2]))
    return hosts, flows, sparse, nat


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        hosts, flows, sparse, nat = parse(f)
    if not hosts or not flows or not sparse:
        sys.exit(f"{sys.argv[1]}: no isolation measurements found (run the wire tests named in the docstring)")
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.5))
    rates = sorted({r for r, _ in hosts})
    w = 0.35
    for i, (mode, label) in enumerate([("no isolation", "one FIFO per class"), ("isolate saddr", "isolate saddr")]):
        ax[0].bar([x + (i - 0.5) * w for x in range(len(rates))], [hosts.get((r, mode), 0) for r in rates], w, label=label)
    if nat:
        ax[0].bar([len(rates) - 0.5 * w], [nat[1]], w, color="C2", label="behind masquerade: isolate saddr")
        ax[0].bar([len(rates) + 0.5 * w], [nat[0]], w, color="C3", label="behind masquerade: isolate saddr nat")
    ax[0].axhline(0.5, color="k", ls="--", lw=1, label="equal hosts (0.5)")
    ax[0].set_xticks(list(range(len(rates) + (1 if nat else 0))))
    ax[0].set_xticklabels([f"{r} Mbit/s" for r in rates] + (["100 Mbit/s NAT"] if nat else []))
    ax[0].set_ylabel("share of host A (1 upload) vs host B (8)")
    ax[0].set_title("hosts")
    ax[0].legend(fontsize=8)
    for r, v in sorted(flows.items()):
        ax[1].plot(range(1, len(v) + 1), v, "o-", label=f"{r} Mbit/s")
    ax[1].axhline(1 / 9, color="k", ls="--", lw=1, label="fair share (1/9)")
    ax[1].set_ylim(0, 0.2)
    ax[1].set_xlabel("flow")
    ax[1].set_ylabel("share of the class")
    ax[1].set_title("isolate flows: nine bulk flows")
    ax[1].legend(fontsize=8)
    srates = sorted(sparse)
    for i, (key, label) in enumerate([("idle", "idle"), ("fifo", "under bulk, one FIFO"),
                                      ("isolated", "under bulk, isolate flows")]):
        ax[2].bar([x + (i - 1) * 0.27 for x in range(len(srates))], [sparse[r].get(key, 0) for r in srates], 0.27,
                  label=label)
    ax[2].set_xticks(list(range(len(srates))))
    ax[2].set_xticklabels([f"{r} Mbit/s" for r in srates])
    ax[2].set_ylabel("one-way delay p99 (ms)")
    ax[2].set_title("a sparse flow in the bulk class")
    ax[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=90)
    print(f"wrote {sys.argv[2]}")


if __name__ == "__main__":
    main()
