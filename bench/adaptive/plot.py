#!/usr/bin/python3
"""Plots the adaptive-link step scenario (issue 12) for the static and the adaptive policy.

    bench/adaptive/run.sh                                   # runs the tests and calls this
    /usr/bin/python3 bench/adaptive/plot.py DIR docs/img/adaptive.png

DIR holds what tests/wire/adaptive_wire_test wrote with QT_ADAPTIVE_OUT=DIR:
static.csv/.json and adaptive.csv/.json (a missing one is drawn as "not
measured"). Per policy, over time: the modem's rate, the shaper's rate and the
upload's goodput (top), and the game flow's one-way delay per 0.5 s interval,
its maximum and p99, against idle p99 + 10 ms, the issue's target (bottom).
"""
import csv
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

POLICIES = [("static", "static: link 100mbit"), ("adaptive", "adaptive: link adaptive 10mbit-100mbit")]


def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def load(d, label):
    path = os.path.join(d, label + ".csv")
    if not os.path.exists(path):
        return None, None
    with open(path) as f:
        rows = [{k: num(v) for k, v in r.items()} for r in csv.DictReader(f)]
    summary = None
    jpath = os.path.join(d, label + ".json")
    if os.path.exists(jpath):
        with open(jpath) as f:
            summary = json.load(f)
    return rows, summary


def phase_text(summary):
    parts = []
    for p in summary.get("phases", []):
        parts.append(f"{p['modem_bps'] / 1e6:.0f}: p99 {num(p['game_p99_ms']):.1f} ms, "
                     f"bulk {100 * num(p['bulk_fraction']):.0f}%")
    idle = num(summary.get("idle", {}).get("game_p99_ms"))
    return f"idle p99 {idle:.2f} ms | " + " | ".join(parts) + f"\nload avg {summary.get('loadavg_after', '?')}"


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    d, png = sys.argv[1], sys.argv[2]
    data = {label: load(d, label) for label, _ in POLICIES}
    if all(rows is None for rows, _ in data.values()):
        sys.exit(f"{d}: neither static.csv nor adaptive.csv (run bench/adaptive/run.sh)")
    fig, ax = plt.subplots(2, 2, figsize=(14, 7.5), sharex="col", gridspec_kw={"height_ratios": [1, 1]})
    for col, (label, title) in enumerate(POLICIES):
        rows, summary = data[label]
        top, bottom = ax[0][col], ax[1][col]
        top.set_title(title)
        if rows is None:
            for a in (top, bottom):
                a.text(0.5, 0.5, "not measured\n(the adaptive controller is not built yet)" if label == "adaptive"
                       else "not measured", ha="center", va="center", transform=a.transAxes, color="gray")
                a.set_xticks([])
                a.set_yticks([])
            continue
        t = [r["t_s"] for r in rows]
        # Each row is the interval ending at t_s: steps drawn "pre". The modem on top of the shaper.
        top.step(t, [r["shaper_mbit"] for r in rows], where="pre", color="C1", lw=3.5, label="shaper rate (qosrun)")
        top.step(t, [r["modem_mbit"] for r in rows], where="pre", color="k", lw=1.5, zorder=3, label="modem rate (tbf)")
        top.plot(t, [r["bulk_mbit"] for r in rows], color="C0", lw=1, alpha=0.6, label="upload goodput")
        top.set_ylim(0, 115)
        top.set_ylabel("Mbit/s")
        top.grid(alpha=0.3)
        top.legend(loc="lower left", fontsize=8)
        bottom.plot(t, [r["game_max_ms"] for r in rows], color="C3", lw=1, alpha=0.7, label="game delay, max per 0.5 s")
        bottom.plot(t, [r["game_p99_ms"] for r in rows], color="C2", lw=1.5, label="game delay, p99 per 0.5 s")
        if summary:
            idle = num(summary.get("idle", {}).get("game_p99_ms"))
            if idle == idle:
                bottom.axhline(idle + 10, color="k", ls="--", lw=1, label="target: idle p99 + 10 ms")
            settle = summary.get("settle_s", 3)
            for p in summary.get("phases", []):
                for a in (top, bottom):
                    a.axvline(p["start_s"], color="gray", lw=0.8, alpha=0.5)
                    a.axvspan(p["start_s"], p["start_s"] + settle, color="gray", alpha=0.08)
            bottom.text(0.01, 0.97, phase_text(summary), transform=bottom.transAxes, va="top", fontsize=7.5,
                        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
        bottom.set_yscale("log")
        bottom.set_ylim(0.05, 1000)
        bottom.set_ylabel("one-way delay (ms)")
        bottom.set_xlabel("time (s); shaded: the first 3 s after a step, not measured")
        bottom.grid(alpha=0.3, which="both")
        bottom.legend(loc="lower right", fontsize=8)
    fig.suptitle("client -> router (qosrun) -> modem (tbf, 250 ms buffer, 100 -> 30 -> 60 Mbit/s) -> server; "
                 "cubic upload + game flow every 10 ms")
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
