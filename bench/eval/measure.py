"""Measurements: irtt/ping latency, iperf3 throughput, CPU time, shares."""
import json
import os
import subprocess
import tempfile
import time

from netns import CLI, SRV, RTR, SRV_ADDR, BOTTLENECK, ns, spawn


def percentile(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * p / 100.0
    f = int(k)
    c = min(f + 1, len(v) - 1)
    return v[f] + (v[c] - v[f]) * (k - f)


def latency_stats(rtts_ms, sent):
    got = len(rtts_ms)
    if not got:
        return {"n": 0, "loss_pct": 100.0}
    mean = sum(rtts_ms) / got
    mdev = (sum((x - mean) ** 2 for x in rtts_ms) / got) ** 0.5
    jitter = (sum(abs(a - b) for a, b in zip(rtts_ms, rtts_ms[1:])) / (got - 1)) if got > 1 else 0.0
    return {"n": got, "loss_pct": 100.0 * (sent - got) / sent if sent else 0.0,
            "min": min(rtts_ms), "avg": mean, "max": max(rtts_ms), "mdev": mdev, "jitter": jitter,
            "p50": percentile(rtts_ms, 50), "p95": percentile(rtts_ms, 95), "p99": percentile(rtts_ms, 99)}


def irtt(seconds, port=3074, interval="10ms", dscp=None):
    """A game-like UDP flow: one small packet every 10 ms to the server's
    port 3074 and back. Returns latency stats over the round trips."""
    fd, out = tempfile.mkstemp(suffix=".json", prefix="qe-irtt-")
    os.close(fd)
    try:
        args = ["irtt", "client", "-i", interval, "-d", f"{seconds}s", "-Q", "-o", out]
        if dscp is not None:
            args += ["--dscp", str(dscp)]
        ns(CLI, *args, f"{SRV_ADDR}:{port}", timeout=seconds + 30, check=False)
        d = json.load(open(out))
        rts = d.get("round_trips", [])
        rtts = [rt["delay"]["rtt"] / 1e6 for rt in rts if rt.get("lost", "false") == "false" and "delay" in rt]
        return latency_stats(rtts, len(rts))
    finally:
        os.unlink(out)


def ping(count=200, interval=0.01):
    out = ns(CLI, "ping", "-n", "-q", "-c", str(count), "-i", str(interval), SRV_ADDR, capture=True,
             check=False, timeout=count * interval + 30)
    # rtt min/avg/max/mdev = 0.040/0.060/0.120/0.010 ms
    for line in out.splitlines():
        if "min/avg/max" in line:
            mn, avg, mx, mdev = (float(x) for x in line.split("=")[1].split()[0].split("/"))
            return {"min": mn, "avg": avg, "max": mx, "mdev": mdev}
    return {}


def start_servers(ports=(5201,)):
    procs = [spawn(SRV, "irtt", "server", "-b", f"{SRV_ADDR}:3074")]
    for p in ports:
        procs.append(spawn(SRV, "iperf3", "-s", "-B", SRV_ADDR, "-p", str(p)))
    time.sleep(0.5)
    return procs


def iperf_download(seconds, port=5201, cport=None, extra=()):
    """A bulk TCP download (server -> client through the bottleneck), cubic."""
    args = ["iperf3", "-c", SRV_ADDR, "-p", str(port), "-R", "-C", "cubic", "-t", str(seconds), "-J", *extra]
    if cport:
        args += ["--cport", str(cport)]
    return spawn(CLI, *args, stdout=subprocess.PIPE, limit=seconds + 30)


def iperf_result(proc, timeout):
    out, _ = proc.communicate(timeout=timeout)
    try:
        d = json.loads(out)
        return d["end"]["sum_received"]["bits_per_second"]
    except (ValueError, KeyError):
        return float("nan")


def cpu_jiffies():
    """(busy, total) jiffies over all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


def iface_packets():
    out = ns(RTR, "cat", f"/sys/class/net/{BOTTLENECK}/statistics/tx_packets", capture=True)
    return int(out.strip())


UDP_TOOL = r'''
import socket, struct, sys, time
mode, addr, port, secs, pps = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
if mode == "recv":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port)); s.settimeout(secs + 5)
    seen = set(); dup = 0; reordered = 0; last = -1
    try:
        while True:
            d = s.recv(2048)
            n = struct.unpack("!Q", d[:8])[0]
            if n == 2**64 - 1: break
            if n in seen: dup += 1
            if n < last: reordered += 1
            last = max(last, n); seen.add(n)
    except socket.timeout:
        pass
    print(len(seen), dup, reordered)
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port + 1))   # the irtt server holds `port` on the server
    n = 0; t0 = time.time(); pad = b"x" * 192
    while time.time() - t0 < secs:
        s.sendto(struct.pack("!Q", n) + pad, (addr, port)); n += 1
        delay = t0 + n / pps - time.time()
        if delay > 0: time.sleep(delay)
    time.sleep(0.5)
    for _ in range(5): s.sendto(struct.pack("!Q", 2**64 - 1), (addr, port))
    print(n)
'''


def udp_stream_start(seconds, pps=2000, port=3074):
    """A numbered UDP stream server -> client (through the bottleneck), from
    port `port`+1 to `port` (both game ports in examples/gaming.qos)."""
    from netns import CLI_ADDR
    rx = spawn(CLI, "/usr/bin/python3", "-c", UDP_TOOL, "recv", CLI_ADDR, str(port), str(seconds), str(pps),
               stdout=subprocess.PIPE, limit=seconds + 30)
    time.sleep(0.3)
    tx = spawn(SRV, "/usr/bin/python3", "-c", UDP_TOOL, "send", CLI_ADDR, str(port), str(seconds), str(pps),
               stdout=subprocess.PIPE, limit=seconds + 30)
    return rx, tx


def udp_stream_result(rx, tx, timeout):
    sent = int(tx.communicate(timeout=timeout)[0].split()[0])
    got, dup, reordered = (int(x) for x in rx.communicate(timeout=timeout)[0].split())
    return {"sent": sent, "received": got, "lost": sent - got, "duplicates": dup, "reordered": reordered}
