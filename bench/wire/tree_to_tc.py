#!/usr/bin/env python3
"""`tc -d qdisc show` + `tc -d class show` of an HTB tree -> `tc -batch` lines
that rebuild it on the device DEV (bench/wire: the u32 comparison runs in the
very tree qosrun built for the policy). Handles HTB qdiscs and classes and
leaf qdiscs whose show line repeats their options (bfifo, pfifo, fq_codel...);
clsact/ingress are left out. Parents come before children."""
import re
import sys

lines = open(sys.argv[1]).read().splitlines()
qdiscs, classes = [], []
for ln in lines:
    w = ln.split()
    if len(w) < 3:
        continue
    if w[0] == "qdisc":
        kind, handle = w[1], w[2]
        if kind in ("clsact", "ingress"):
            continue
        if w[3] == "root":
            parent, rest = "root", w[4:]
        else:
            parent, rest = "parent " + w[4], w[5:]
        if rest and rest[0] == "refcnt":
            rest = rest[2:]
        if kind == "htb":
            opts = []
            for key in ("r2q", "default"):
                if key in rest:
                    v = rest[rest.index(key) + 1]
                    opts += [key, v[2:] if v.startswith("0x") else v]
            rest = opts
        qdiscs.append((handle, parent, f"qdisc add dev DEV {parent} handle {handle} {kind} {' '.join(rest)}"))
    elif w[0] == "class" and w[1] == "htb":
        classid = w[2]
        parent = "root" if w[3] == "root" else "parent " + w[4]
        opts = []
        for key in ("prio", "quantum", "rate", "ceil", "burst", "cburst"):
            m = re.search(rf"\b{key} (\S+)", ln)
            if m:
                opts += [key, m.group(1).split("/")[0]]
        classes.append((classid, parent, f"class add dev DEV {parent} classid {classid} htb {' '.join(opts)}"))

root_q = [q for q in qdiscs if q[1] == "root"]
if len(root_q) != 1 or not classes:
    sys.exit(f"{sys.argv[1]}: no HTB tree with one root qdisc found")
done = {root_q[0][0]}          # handles "1:" and class ids "1:10" that exist
out = [root_q[0][2]]
todo = [q for q in qdiscs if q[1] != "root"] + classes
while todo:
    progress = False
    for item in list(todo):
        ident, parent, cmd = item
        p = parent.split()[-1]
        major = p.split(":")[0] + ":"
        ok = (p in done) if item in qdiscs else (p == "root" and major in done) or p in done or (parent.endswith(":") and p in done)
        if item in classes and parent == "root":
            ok = ident.split(":")[0] + ":" in done
        if ok:
            out.append(cmd)
            done.add(ident)
            todo.remove(item)
            progress = True
    if not progress:
        sys.exit(f"{sys.argv[1]}: cannot order {len(todo)} items (parents missing): {todo[0][2]}")
print("\n".join(out))
