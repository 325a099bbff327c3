#!/usr/bin/python3
"""CI check of the evaluation's --quick run (ctest EvalQuick).

Runs bench/eval/run.py --quick into OUT, then checks that the run is whole
and that the properties that do not depend on a quiet machine hold:
  * every configuration measured (no errors, latency numbers present);
  * qosc's gaming policy keeps the game flow's p99 under load below the
    plain FIFO's (the bufferbloat it removes is two orders of magnitude, so
    this does not flake on a busy 2-core machine);
  * strict priority gives the top class the largest share, rr/wfq/drr shares
    are within 0.10 of configured;
  * a reload under load loses no packet.
The published targets (±3%, ≤ 1 ms, CPU ratios) are judged in report.md by
the full run, not here. Exit 77 (skipped) without root.
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    if os.geteuid() != 0:
        print("EvalQuick: skipped: needs root to create network namespaces")
        return 77
    out, bindir = sys.argv[1], sys.argv[2]
    r = subprocess.run(["/usr/bin/python3", os.path.join(HERE, "run.py"), "--quick", "--out", out, "--bindir", bindir],
                       timeout=1500)
    if r.returncode != 0:
        print(f"run.py failed with {r.returncode}")
        return 1
    raw = json.load(open(os.path.join(out, "raw.json")))
    problems = []
    lat = {}
    for row in raw["runs"]:
        if "error" in row:
            problems.append(f"{row['config']} at {row['rate']}: {row['error'][:300]}")
        if "latency" in row:
            lat[row["config"]] = row["latency"]
        if "fairness" in row:
            f = row["fairness"]
            kind = row["config"][5:]
            if kind == "strict_priority":
                if max(f["shares"]) != f["shares"][0]:
                    problems.append(f"strict priority: top class did not get the largest share: {f['shares']}")
            elif f["max_abs_err"] > 0.10:
                problems.append(f"{kind}: shares {f['shares']} vs configured {f['expected']}")
        if "reload" in row and row["reload"]["lost"] != 0:
            problems.append(f"reload lost {row['reload']['lost']} of {row['reload']['sent']} packets")
    for need in ("baseline", "tc-hand", "qosc-gaming", "dissertation"):
        if need not in lat:
            problems.append(f"no latency results for {need}")
    if "baseline" in lat and "qosc-gaming" in lat:
        g, b = lat["qosc-gaming"]["load"].get("p99"), lat["baseline"]["load"].get("p99")
        print(f"game flow p99 under load: qosc gaming {g:.2f} ms, FIFO {b:.2f} ms")
        if not g < b:
            problems.append(f"gaming policy did not lower p99 under load ({g} vs {b} ms)")
    for p in problems:
        print("EvalQuick:", p)
    print(f"report: {os.path.join(out, 'report.md')}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
