"""The configurations compared on the same bottleneck. Each has apply(rate)
and remove(); all act on the router's interface toward the client."""
import os
import re
import subprocess
import tempfile

from netns import RTR, BOTTLENECK, ns, sh


def rate_bps(text):
    m = re.fullmatch(r"([0-9.]+)(bit|kbit|mbit|gbit)", text)
    if not m:
        raise ValueError(f"bad rate {text}")
    return int(float(m.group(1)) * {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}[m.group(2)])


def tc(*args, check=True):
    return ns(RTR, "tc", *args, check=check)


class Baseline:
    """No QoS: one HTB class at the link rate with the default FIFO behind it
    (pfifo, limit = txqueuelen) — what a user has once something shapes."""
    name, label = "baseline", "baseline (HTB + FIFO)"

    def apply(self, rate):
        tc("qdisc", "add", "dev", BOTTLENECK, "root", "handle", "1:", "htb", "default", "1")
        tc("class", "add", "dev", BOTTLENECK, "parent", "1:", "classid", "1:1", "htb", "rate", rate)

    def remove(self):
        tc("qdisc", "del", "dev", BOTTLENECK, "root", check=False)


class TcByHand:
    """The gaming intent written by a competent admin: HTB with priorities,
    assured rates, explicit quantum and burst, byte-limited leaf queues sized
    to ~5 ms, and u32 filters for the same matches as examples/gaming.qos
    (download direction: the server's source ports)."""
    name, label = "tc-hand", "tc by hand (HTB + u32)"

    def apply(self, rate):
        bps = rate_bps(rate)
        mtu = 1514
        q = str(mtu)

        def leaf(minor, prio, share, ceil_share=1.0):
            r = max(int(bps * share), 64000)
            tc("class", "add", "dev", BOTTLENECK, "parent", "1:1", "classid", f"1:{minor}", "htb",
               "rate", f"{r}bit", "ceil", f"{int(bps * ceil_share)}bit", "prio", str(prio),
               "quantum", q, "burst", "15k", "cburst", "15k")
            limit = max(int(bps / 8 * 0.005), 4 * mtu)      # 5 ms of traffic, at least 4 frames
            tc("qdisc", "add", "dev", BOTTLENECK, "parent", f"1:{minor}", "handle", f"{minor}:",
               "bfifo", "limit", str(limit))

        tc("qdisc", "add", "dev", BOTTLENECK, "root", "handle", "1:", "htb", "default", "50")
        tc("class", "add", "dev", BOTTLENECK, "parent", "1:", "classid", "1:1", "htb",
           "rate", rate, "ceil", rate, "quantum", q, "burst", "15k", "cburst", "15k")
        leaf(10, 0, 0.05)    # control (icmp, ssh)
        leaf(20, 0, 0.20)    # gaming
        leaf(30, 1, 0.10)    # voip (dscp ef)
        leaf(40, 3, 0.30)    # web
        leaf(50, 5, 0.35)    # bulk (default)

        def u32(prio, flowid, *matches):
            tc("filter", "add", "dev", BOTTLENECK, "parent", "1:", "protocol", "ip", "prio", str(prio),
               "u32", *matches, "flowid", flowid)
        # game ports 3074-3075, 3478-3480, 27015-27030 as sport (server -> client)
        u32(1, "1:20", "match", "ip", "protocol", "17", "0xff", "match", "ip", "sport", "3074", "0xfffe")
        u32(1, "1:20", "match", "ip", "protocol", "17", "0xff", "match", "ip", "sport", "3478", "0xfffe")
        u32(1, "1:20", "match", "ip", "protocol", "17", "0xff", "match", "ip", "sport", "3480", "0xffff")
        u32(1, "1:20", "match", "ip", "protocol", "17", "0xff", "match", "ip", "sport", "27015", "0xffff")
        u32(1, "1:20", "match", "ip", "protocol", "17", "0xff", "match", "ip", "sport", "27016", "0xfff0")
        u32(2, "1:30", "match", "ip", "tos", "0xb8", "0xfc")
        u32(3, "1:40", "match", "ip", "protocol", "6", "0xff", "match", "ip", "sport", "80", "0xffff")
        u32(3, "1:40", "match", "ip", "protocol", "6", "0xff", "match", "ip", "sport", "443", "0xffff")
        u32(4, "1:10", "match", "ip", "protocol", "1", "0xff")

    def remove(self):
        tc("qdisc", "del", "dev", BOTTLENECK, "root", check=False)


class Qosc:
    """A policy compiled by qosc for this link rate and attached by qosrun."""

    def __init__(self, policy, bindir, label=None, name=None, extra=()):
        self.policy, self.bindir, self.extra = policy, bindir, list(extra)
        base = os.path.splitext(os.path.basename(policy))[0]
        self.name = name or f"qosc-{base}"
        self.label = label or f"qosc {base}.qos"
        self.obj = None

    def apply(self, rate):
        fd, self.obj = tempfile.mkstemp(suffix=".bpf.o", prefix="qe-")
        os.close(fd)
        sh(os.path.join(self.bindir, "qosc"), self.policy, "--link", rate, "-o", self.obj, *self.extra)
        ns(RTR, os.path.join(self.bindir, "qosrun"), "attach", self.obj, BOTTLENECK)

    def remove(self):
        ns(RTR, os.path.join(self.bindir, "qosrun"), "detach", BOTTLENECK, check=False)
        if self.obj:
            os.unlink(self.obj)
            self.obj = None


class DissertationStyle:
    """Reproduces the dissertation's scheduling idea for contrast: the same
    classifier, attached as a TC program that only sets skb->priority, with
    no classful qdisc behind it (one HTB class + FIFO at the link rate, as the
    baseline). Nothing is reordered: this is the design the project replaces."""
    name, label = "dissertation", "dissertation-style (priority only, FIFO)"

    def __init__(self, policy, bindir):
        self.policy, self.bindir, self.obj = policy, bindir, None

    def apply(self, rate):
        Baseline().apply(rate)
        fd, self.obj = tempfile.mkstemp(suffix=".bpf.o", prefix="qe-")
        os.close(fd)
        sh(os.path.join(self.bindir, "qosc"), self.policy, "--link", rate, "-o", self.obj)
        ns(RTR, os.path.join(self.bindir, "qosrun"), "attach", self.obj, BOTTLENECK, "--queues", "none")

    def remove(self):
        ns(RTR, os.path.join(self.bindir, "qosrun"), "detach", BOTTLENECK, check=False)
        tc("qdisc", "del", "dev", BOTTLENECK, "root", check=False)
        if self.obj:
            os.unlink(self.obj)
            self.obj = None
