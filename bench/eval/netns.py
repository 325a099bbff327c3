"""Namespaces for the evaluation: client - router - server, bottleneck on the
router's egress toward the client (the download direction). Everything is
created here and deleted by name; no traffic leaves these namespaces."""
import os
import subprocess
import time

CLI, RTR, SRV = "qe-cli", "qe-rtr", "qe-srv"
BOTTLENECK = "rtr-cli"          # router interface toward the client
CLI_ADDR, SRV_ADDR = "10.78.1.2", "10.78.2.2"


def sh(*args, check=True, capture=False, timeout=120):
    r = subprocess.run(list(args), check=False, text=True, timeout=timeout,
                       stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    if check and r.returncode != 0:
        raise RuntimeError(f"command failed ({r.returncode}): {' '.join(args)}\n{r.stderr.strip()}")
    return r.stdout if capture else r


def ns(name, *args, **kw):
    return sh("ip", "netns", "exec", name, *args, **kw)


def spawn(name, *args, stdout=subprocess.DEVNULL, limit=3600):
    """A tool in namespace `name`, in the background; timeout(1) ends it
    (TERM, then KILL 3 s later) after `limit` seconds even if nobody waits."""
    return subprocess.Popen(["timeout", "-k", "3", str(int(limit)), "ip", "netns", "exec", name, *args],
                            stdout=stdout, stderr=subprocess.DEVNULL, text=True)


def destroy():
    for n in (CLI, RTR, SRV):
        pids = sh("ip", "netns", "pids", n, check=False, capture=True) or ""
        for p in pids.split():
            try:
                os.kill(int(p), 9)
            except (ProcessLookupError, ValueError):
                pass
        sh("ip", "netns", "del", n, check=False)


def create(gso=False):
    destroy()
    for n in (CLI, RTR, SRV):
        sh("ip", "netns", "add", n)
        ns(n, "ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", "cli-rtr", "netns", CLI, "type", "veth", "peer", "name", BOTTLENECK, "netns", RTR)
    sh("ip", "link", "add", "rtr-srv", "netns", RTR, "type", "veth", "peer", "name", "srv-rtr", "netns", SRV)
    ns(CLI, "ip", "addr", "add", f"{CLI_ADDR}/24", "dev", "cli-rtr")
    ns(RTR, "ip", "addr", "add", "10.78.1.1/24", "dev", BOTTLENECK)
    ns(RTR, "ip", "addr", "add", "10.78.2.1/24", "dev", "rtr-srv")
    ns(SRV, "ip", "addr", "add", f"{SRV_ADDR}/24", "dev", "srv-rtr")
    for n, dev in ((CLI, "cli-rtr"), (RTR, BOTTLENECK), (RTR, "rtr-srv"), (SRV, "srv-rtr")):
        ns(n, "ip", "link", "set", dev, "up")
    ns(CLI, "ip", "route", "add", "default", "via", "10.78.1.1")
    ns(SRV, "ip", "route", "add", "default", "via", "10.78.2.1")
    ns(RTR, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    # Congestion control is inherited from the host (bbr hides bufferbloat):
    # every TCP sender is pinned to cubic with iperf3 -C, and the namespaces'
    # default is set too.
    for n in (CLI, SRV):
        ns(n, "sysctl", "-qw", "net.ipv4.tcp_congestion_control=cubic", check=False)
    if not gso:
        # The bottleneck carries MTU-sized packets as a real NIC's queue would
        # (see docs/benchmarks.md): HTB otherwise sees 64 KB GSO super-packets.
        ns(RTR, "ethtool", "-K", BOTTLENECK, "gso", "off", "tso", "off", "gro", "off", check=False)
        ns(SRV, "ethtool", "-K", "srv-rtr", "gso", "off", "tso", "off", check=False)
    time.sleep(0.2)
