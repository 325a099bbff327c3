"""bench/mq: the summary of runs.csv (medians per configuration, the ratio mq2 / htb1)."""
import csv
import statistics
import sys

rows = list(csv.DictReader(open(sys.argv[1])))
host = open(sys.argv[2]).read().strip().replace("\n", "; ")
shaped, offered = {}, {}
for r in rows:
    shaped.setdefault(r["config"], []).append(int(r["shaped_pps"]))
    offered.setdefault(r["config"], []).append(int(r["offered_pps"]))
print(f"bench/mq: 64-byte UDP from 2 CPUs through the router's egress (link 10gbit, 128 hosts); {host}")
print(f"median of {len(shaped.get('none', []))} runs: packets/s the router sent on qm-r1 (offered: what trafgen put on qm-s0)")
LABELS = (("none", "no qdisc (veth noqueue)"), ("htb1", "one HTB (--tx-queues 1)"), ("mq2", "mq + 2 HTB (auto)"),
          ("htb1cpu", "one HTB + a cpumap (bench's)"), ("mq2steer", "mq + 2 HTB + --steer-from"))
for c, label in LABELS:
    if c in shaped:
        print(f"  {label:<26} {statistics.median(shaped[c]):>10,.0f} pps  (offered {statistics.median(offered[c]):>10,.0f};"
              f" runs: {' '.join(f'{x:,}' for x in shaped[c])})")
for a, b in (("mq2", "htb1"), ("mq2steer", "htb1"), ("mq2steer", "mq2"), ("mq2steer", "htb1cpu"), ("htb1cpu", "htb1")):
    if a in shaped and b in shaped:
        print(f"  {a} / {b}: {statistics.median(shaped[a]) / statistics.median(shaped[b]):.2f}x")
# Both CPUs are busy with every hop of every packet (veth), so 2 CPU-seconds
# per second over the rate is the CPU time a packet takes; the shaper's share
# (TC program, HTB, waiting for its lock) is the difference to no qdisc.
if "none" in shaped:
    base = 2e6 / statistics.median(shaped["none"])
    for c, label in (("htb1", "one HTB"), ("mq2", "mq + 2 HTB"), ("htb1cpu", "HTB + cpumap"), ("mq2steer", "mq2 + steer")):
        if c in shaped:
            print(f"  {label:<12} the shaper's CPU time per packet, estimated: "
                  f"{2e6 / statistics.median(shaped[c]) - base:.2f} us (2 CPUs / rate, minus no qdisc's {base:.2f} us)")
