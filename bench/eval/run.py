#!/usr/bin/python3
"""qosc evaluation: the dissertation's experiments, done with real queues.

Runs every configuration interleaved, repeated, inside namespaces it creates
(client - router - server, shaped bottleneck on the router), and writes raw
results (JSON + CSV), a markdown report with medians and spreads, and PNG
plots into the output directory.

    sudo bench/eval/run.py                 # full run (see --help for sizes)
    sudo bench/eval/run.py --quick         # short run, as CI does
"""
import argparse
import csv
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import configs  # noqa: E402
import measure  # noqa: E402
import netns  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))


def fairness_policy(kind, rate):
    """Three backlogged classes told apart by the server's port; configured
    weights 1:2:3 (wfq), quanta 1:2:3 (drr), equal (rr), or priorities 0/1/2 (sp)."""
    w = {"a": 1, "b": 2, "c": 3}
    lines = [f"policy fair_{kind} {{", f"    link {rate};", f"    scheduler {kind};"]
    for i, (n, k) in enumerate(w.items()):
        attrs = {"weighted_fair_queuing": f"weight {k};",
                 "deficit_round_robin": f"quantum {k * 1514}b;",
                 "round_robin": "",
                 "strict_priority": f"priority {i};"}[kind]
        lines.append(f"    class {n} {{ {attrs} }}")
    lines.append("    class other { priority 7; default; }")
    for i, n in enumerate(w):
        lines.append(f"    rule tcp sport {5201 + i} -> {n};")
    lines.append("}")
    expected = {"weighted_fair_queuing": [1, 2, 3], "deficit_round_robin": [1, 2, 3],
                "round_robin": [1, 1, 1], "strict_priority": [1, 0, 0]}[kind]
    tot = sum(expected)
    return "\n".join(lines) + "\n", [e / tot for e in expected]


def run_latency(args, cfg, rate):
    res = {}
    res["idle"] = measure.irtt(args.seconds)
    res["ping"] = measure.ping(count=int(args.seconds * 50), interval=0.02)
    p = measure.iperf_download(args.seconds + 3)
    time.sleep(2)
    res["load"] = measure.irtt(args.seconds)
    res["bulk_bps"] = measure.iperf_result(p, args.seconds + 30)
    return res


def run_concurrent(args, cfg, rate):
    """Gaming UDP (port 3074) plus four bulk TCP flows at once."""
    p = measure.iperf_download(args.seconds + 3, extra=("-P", "4"))
    time.sleep(2)
    game = measure.irtt(args.seconds)
    bulk = measure.iperf_result(p, args.seconds + 30)
    return {"game": game, "bulk_bps": bulk}


def run_cpu(args, cfg, rate):
    """CPU time per forwarded packet during a saturating download, minus the
    background measured just before over the same duration."""
    b0, t0 = measure.cpu_jiffies()
    time.sleep(args.seconds / 2)
    b1, t1 = measure.cpu_jiffies()
    background = (b1 - b0) / max(t1 - t0, 1)
    p = measure.iperf_download(args.seconds)
    time.sleep(1)
    n0 = measure.iface_packets()
    c0, s0 = measure.cpu_jiffies()
    time.sleep(args.seconds - 2)
    c1, s1 = measure.cpu_jiffies()
    n1 = measure.iface_packets()
    measure.iperf_result(p, args.seconds + 30)
    hz = os.sysconf("SC_CLK_TCK")
    busy = (c1 - c0) - background * (s1 - s0)
    pkts = max(n1 - n0, 1)
    return {"ns_per_packet": busy / hz * 1e9 / pkts, "packets": pkts, "background_util": background}


def run_fairness(args, kind, rate):
    text, expected = fairness_policy(kind, rate)
    path = os.path.join(args.out, f"fair_{kind}.qos")
    with open(path, "w") as f:
        f.write(text)
    cfg = configs.Qosc(path, args.bindir, name=f"fair-{kind}")
    cfg.apply(rate)
    try:
        procs = [measure.iperf_download(args.seconds, port=5201 + i) for i in range(3)]
        got = [measure.iperf_result(p, args.seconds + 30) for p in procs]
    finally:
        cfg.remove()
    tot = sum(got)
    shares = [g / tot for g in got] if tot else [float("nan")] * 3
    x = [s / e for s, e in zip(shares, expected) if e > 0]
    jain = (sum(x) ** 2) / (len(x) * sum(v * v for v in x)) if x else float("nan")
    return {"expected": expected, "shares": shares, "bps": got, "jain": jain,
            "max_abs_err": max(abs(s - e) for s, e in zip(shares, expected))}


def run_reload(args, rate, swaps=5):
    """Reload under load: a numbered UDP stream (the gaming class, well below
    the link rate so that no loss is expected from queueing) runs while the
    policy is swapped `swaps` times between gaming.qos and a variant; any
    missing sequence number is a packet lost during a swap."""
    ex = os.path.join(ROOT, "examples")
    variant = os.path.join(args.out, "gaming_variant.qos")
    with open(os.path.join(ex, "gaming.qos")) as f:
        text = f.read()
    with open(variant, "w") as f:  # same classes, one more rule, another rate for web
        f.write(text.replace("class web     { priority 3; }", "class web     { priority 3; rate 90mbit; }")
                    .replace("rule icmp -> control;", "rule icmp -> control;\n    rule tcp dport 8080 -> web;"))
    objs = []
    for src, name in ((os.path.join(ex, "gaming.qos"), "reload_a"), (variant, "reload_b")):
        obj = os.path.join(args.out, name + ".bpf.o")
        configs.sh(os.path.join(args.bindir, "qosc"), src, "--link", rate, "-o", obj)
        objs.append(obj)
    qosrun = os.path.join(args.bindir, "qosrun")
    netns.ns(netns.RTR, qosrun, "attach", objs[0], netns.BOTTLENECK)
    try:
        secs = max(args.seconds, 4)
        rx, tx = measure.udp_stream_start(secs, pps=2000)
        time.sleep(1)
        t_swap = []
        for i in range(swaps):
            t0 = time.time()
            netns.ns(netns.RTR, qosrun, "reload", objs[(i + 1) % 2], netns.BOTTLENECK)
            t_swap.append((time.time() - t0) * 1000)
            time.sleep(max(secs - 2, 1) / swaps)
        res = measure.udp_stream_result(rx, tx, secs + 30)
        res["swaps"] = swaps
        res["swap_ms"] = t_swap
        try:
            st = json.loads(netns.ns(netns.RTR, qosrun, "stats", netns.BOTTLENECK, "--json", capture=True).splitlines()[-1])
            res["stats"] = st
        except Exception as e:  # the stream's own counts are the measurement
            res["stats_error"] = str(e)
    finally:
        netns.ns(netns.RTR, qosrun, "detach", netns.BOTTLENECK, check=False)
    return res


def run_pifo(args):
    """SP-PIFO vs exact PIFO on the same traces (bench/pifo, the template's code)."""
    sim = os.path.join(args.bindir, "qosc-pifo-sim")
    out = configs.sh(sim, "--csv", "--packets", "100000" if args.quick else "400000", capture=True)
    rows = list(csv.DictReader(out.splitlines()))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short run: 1 rate, 3 s per measurement, 1 repeat")
    ap.add_argument("--rates", default="100mbit,20mbit")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--bindir", default=os.path.join(ROOT, os.environ.get("QOSC_BUILD_DIR", "build"), "bin"))
    ap.add_argument("--only", default="", help="comma-separated configuration names")
    args = ap.parse_args()
    if args.quick:
        args.rates, args.repeats, args.seconds = "100mbit", 1, 4
    if os.geteuid() != 0:
        sys.exit("eval: needs root to create network namespaces")
    os.makedirs(args.out, exist_ok=True)
    ex = os.path.join(ROOT, "examples")
    cfgs = [configs.Baseline(), configs.TcByHand(),
            configs.Qosc(os.path.join(ex, "gaming.qos"), args.bindir),
            configs.Qosc(os.path.join(ex, "server.qos"), args.bindir),
            configs.Qosc(os.path.join(ex, "default.qos"), args.bindir),
            configs.DissertationStyle(os.path.join(ex, "gaming.qos"), args.bindir)]
    # gaming.qos under each of the other schedulers (same classes and rules).
    with open(os.path.join(ex, "gaming.qos")) as f:
        gaming = f.read()
    for kind in ("round_robin", "deficit_round_robin", "weighted_fair_queuing", "pifo"):
        path = os.path.join(args.out, f"gaming_{kind}.qos")
        with open(path, "w") as f:
            f.write(gaming.replace("scheduler strict_priority;", f"scheduler {kind};"))
        cfgs.append(configs.Qosc(path, args.bindir, name=f"qosc-gaming-{kind}", label=f"qosc gaming.qos, {kind}"))
    if args.only:
        keep = set(args.only.split(","))
        cfgs = [c for c in cfgs if c.name in keep]
    rates = args.rates.split(",")
    raw = {"meta": {"kernel": os.uname().release, "cpus": os.cpu_count(), "started": time.time(),
                    "args": vars(args)}, "runs": []}
    netns.create()
    servers = measure.start_servers(ports=(5201, 5202, 5203))
    try:
        for rep in range(args.repeats):
            for rate in rates:
                for cfg in cfgs:          # interleaved: every config once per repeat
                    print(f"[{rep + 1}/{args.repeats}] {rate} {cfg.name}", flush=True)
                    row = {"repeat": rep, "rate": rate, "config": cfg.name, "label": cfg.label}
                    try:
                        cfg.apply(rate)
                        try:
                            row["latency"] = run_latency(args, cfg, rate)
                            row["concurrent"] = run_concurrent(args, cfg, rate)
                            row["cpu"] = run_cpu(args, cfg, rate)
                        finally:
                            cfg.remove()
                    except Exception as e:  # recorded, the run goes on
                        row["error"] = str(e)
                        print(f"   error: {e}", file=sys.stderr)
                    raw["runs"].append(row)
                for kind in ("round_robin", "deficit_round_robin", "weighted_fair_queuing", "strict_priority"):
                    print(f"[{rep + 1}/{args.repeats}] {rate} fairness {kind}", flush=True)
                    try:
                        raw["runs"].append({"repeat": rep, "rate": rate, "config": f"fair-{kind}",
                                            "fairness": run_fairness(args, kind, rate)})
                    except Exception as e:
                        raw["runs"].append({"repeat": rep, "rate": rate, "config": f"fair-{kind}", "error": str(e)})
        for rate in rates:
            print(f"reload under load at {rate}", flush=True)
            try:
                raw["runs"].append({"rate": rate, "config": "reload", "reload": run_reload(args, rate)})
            except Exception as e:
                raw["runs"].append({"rate": rate, "config": "reload", "error": str(e)})
        try:
            raw["pifo"] = run_pifo(args)
        except Exception as e:
            raw["pifo_error"] = str(e)
    finally:
        for p in servers:
            p.kill()
        netns.destroy()
    with open(os.path.join(args.out, "raw.json"), "w") as f:
        json.dump(raw, f, indent=1)
    import report
    report.write(raw, args.out)
    print(f"results in {args.out}/ (report.md, raw.json, summary.csv, *.png)")


if __name__ == "__main__":
    main()
