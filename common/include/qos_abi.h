/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* qos_abi.h: data layouts shared by the generated BPF programs and qosrun.
 * Plain C with linux/types.h only, so both the BPF side and C++ include it.
 * Changing a layout is an ABI change: bump QOS_ABI_VERSION. */
#ifndef QOS_ABI_H
#define QOS_ABI_H

#include <linux/types.h>

#define QOS_ABI_VERSION 1
#define QOS_MAX_CLASSES 64

/* Section holding the JSON manifest (see common/include/qosc/manifest.hpp). */
#define QOS_MANIFEST_SECTION ".qosc.manifest"

/* A rule's target that drops the packet instead of naming a class id
 * (struct qos_pkt's target in the programs, a test run's verdict). */
#define QOS_TARGET_DROP (-1)

/* Hooks: index into the per-hook arrays of qos_class_stats. */
enum qos_hook { QOS_HOOK_XDP = 0, QOS_HOOK_TC = 1, QOS_NHOOKS = 2 };

/* Map "qos_stats": BPF_MAP_TYPE_PERCPU_ARRAY, key __u32, max_entries
 * nclasses + 1. Entry i < nclasses is class i; entry nclasses counts the
 * packets whose rule target is `drop`. */
struct qos_class_stats {
	__u64 packets[QOS_NHOOKS];       /* classified into this class (incl. later dropped) */
	__u64 bytes[QOS_NHOOKS];
	__u64 drop_policer[QOS_NHOOKS];  /* dropped by the class's rate/burst policer */
	__u64 drop_rule[QOS_NHOOKS];     /* only in the drop slot: dropped by a `drop` rule */
};

/* Map "qos_flows": BPF_MAP_TYPE_LRU_HASH (bounded), the flow analyzer's table.
 * Sampled (manifest "flow_sample" N > 1): one sample per N x
 * QOS_FLOW_SAMPLE_UNIT bytes on average, a packet of len bytes drawn with
 * probability len / (N x unit) (templates/qos_maps.h, qos_flow_sampled). */
#define QOS_FLOW_SAMPLE_UNIT 2048
struct qos_flow_key {
	__u8 saddr[16];   /* IPv4 in the first 4 bytes, network order */
	__u8 daddr[16];
	__u16 sport;      /* host order; 0 when the packet has no L4 header */
	__u16 dport;
	__u8 proto;
	__u8 family;      /* 4 or 6 */
	__u8 pad[2];
};
struct qos_flow_val {
	__u64 first_ns;   /* bpf_ktime_get_ns() at first packet */
	__u64 last_ns;
	__u64 packets;
	__u64 bytes;
	__u32 class_id;
	__u32 hook_mask;  /* 1 << QOS_HOOK_XDP | 1 << QOS_HOOK_TC: where it was seen */
};

/* XDP -> TC hand-off and test observation: the XDP program stores this in
 * the packet's data_meta area (bpf_xdp_adjust_meta) when it passes a packet
 * and qos_cfg.xdp_meta is set; BPF_PROG_TEST_RUN returns it at the start of
 * data_out. A tc ingress program or AF_XDP on the same interface can read
 * it; qosc's own TC program runs on egress and classifies by itself. */
#define QOS_META_MAGIC 0x51c0u

/* Load-time switches: a const volatile variable in its own read-only
 * section, set by the loader before load (libbpf's initial value); the
 * verifier sees the frozen value and removes the code a switch turns off. */
#define QOS_CFG_SECTION ".rodata.qos_cfg"
struct qos_cfg {
	__u32 xdp_meta;   /* write struct qos_meta (bpf_xdp_adjust_meta, ~9 ns) */
	/* `isolate ... nat`: offsetof(struct nf_conn,
	 * tuplehash[IP_CT_DIR_ORIGINAL].tuple.src.u3) in the running kernel,
	 * from its BTF (0 when the policy has no `nat`). The loader sets it
	 * instead of CO-RE relocations: clang 19 crashes when one process
	 * compiles a program with several CO-RE field reads twice. */
	__u32 ct_src_off;
	/* The TC program's skb->queue_mapping for every packet that is not a
	 * listed host's (and qosrun's probes): 0 = left alone; q + 1 = TX queue
	 * q (qos_host_val.queue says how the kernel reads it). qosrun sets 1
	 * when it shapes hosts with one HTB per TX queue under mq
	 * (docs/hosts.md, "Every core"): the policy's own leaves are only in
	 * queue 0's HTB. Objects of an older qosc lack the field (their section
	 * is 8 bytes); the loader refuses them for such a tree. */
	__u32 unlisted_queue;
};
struct qos_meta {
	__u16 magic;      /* QOS_META_MAGIC */
	__u16 class_id;
	__u32 reserved;
};

/* The TC egress program picks HTB leaf 1:(QOS_HTB_MINOR_BASE + class id) by
 * setting skb->priority = (QOS_HTB_MAJOR << 16) | minor; HTB enqueues there. */
#define QOS_HTB_MAJOR 1u
#define QOS_HTB_MINOR_BASE 0x10u

/* ---- additive since ABI 1 (codegen) ---- */

/* Map "qos_buckets": BPF_MAP_TYPE_ARRAY, key __u32 class id, max_entries
 * nclasses. Per-class policer state (see templates/qos_bucket.h): a GCRA /
 * virtual-time bucket. tat_ns is the theoretical arrival time in
 * bpf_ktime_get_ns() time; 0 = idle. The rates and bursts are constants in
 * the generated code, not in the map. */
struct qos_bucket_state {
	__u64 tat_ns;
	__u64 pad;
};

/* Map "qos_pifo": BPF_MAP_TYPE_ARRAY, key 0, one entry: SP-PIFO (Alcoz et
 * al., NSDI'20) adaptive bounds of the strict-priority bands approximating
 * PIFO. The TC program maps a packet of rank r to band b (0 served first)
 * and sets skb->priority = QOS_HTB_MAJOR << 16 | (QOS_HTB_MINOR_BASE + b).
 * The manifest says "pifo_mapping": "sp-pifo" and "pifo_bands": n; qosrun
 * builds n HTB leaves 1:(QOS_HTB_MINOR_BASE + b) with prio b. */
#define QOS_PIFO_MAX_BANDS 16
struct qos_pifo_state {
	__s64 bound[QOS_PIFO_MAX_BANDS];   /* queue bound q_b (rank of the last packet pushed into b) */
	__u64 inversions;                  /* push-down events (rank below every bound) */
	__u64 pad;
};

/* The TC program also stores the class it chose in skb->cb[QOS_CB_CLASS]
 * as (QOS_META_MAGIC << 16) | class id: with a pifo scheduler skb->priority
 * names a band, not the class, and test runs return cb[] in ctx_out. */
#define QOS_CB_CLASS 0

/* Load-time tables (the "maps" strategy, see docs/codegen.md): when the
 * manifest's "tables_section" is not "", the object carries a non-allocated
 * ELF section of that name (".qosc.tables") holding the contents of maps the
 * loader must fill after the object is loaded and before a program runs:
 *   struct qos_tables_header, then nmaps times
 *   struct qos_table_header + data, the data padded to 8 bytes:
 *   - flags & QOS_TABLE_DENSE: count values of value_size bytes for the
 *     __u32 keys 0 .. count-1 (array maps);
 *   - otherwise count (key, value) pairs of key_size + value_size bytes
 *     (LPM tries: key = __u32 prefixlen + address bytes in network order).
 * A map name is NUL-padded; the map's key/value sizes must equal the
 * header's. All integers little endian (BPF objects are bpfel). */
#define QOS_TABLES_SECTION ".qosc.tables"
#define QOS_TABLES_MAGIC "QOSTBL1"
#define QOS_TABLE_DENSE 1u
struct qos_tables_header {
	char magic[8];        /* QOS_TABLES_MAGIC, NUL-terminated */
	__u32 nmaps;
	__u32 reserved;
};
struct qos_table_header {
	char name[16];        /* map name */
	__u32 key_size;
	__u32 value_size;
	__u32 count;
	__u32 flags;          /* QOS_TABLE_DENSE */
};

/* ---- isolation inside a class (additive since ABI 1; docs/isolation.md) ----
 * A class with `isolate` has, in the root HTB, its leaf 1:(QOS_HTB_MINOR_BASE
 * + id) holding a nested HTB qdisc (handle (QOS_HTB_MINOR_BASE + id):) with
 * one sub-queue per slot, :(QOS_ISO_MINOR_BASE + slot), and a second leaf
 * 1:(QOS_HTB_SPARSE_BASE + id) for the class's sparse flows (sent within an
 * assured rate, so they never wait behind the class's bulk). The TC program
 * stores the nested HTB's classid in skb->cb[QOS_CB_SUBQ] (0 when the class
 * does not isolate); qosrun attaches a filter to each nested HTB that
 * returns it. Hosts with F > 1 flows each (saddr/daddr): host h's sub-queue
 * holds one more HTB, handle (host_major + h): (the manifest's host_major),
 * with its flows at :(QOS_ISO_MINOR_BASE + f), chosen by skb->cb[QOS_CB_SUBQ
 * + 1]. */
#define QOS_CB_SUBQ 1
#define QOS_HTB_SPARSE_BASE 0x100u
#define QOS_ISO_MINOR_BASE 0x10u
#define QOS_HOST_QDISC_MAJOR_BASE 0x1000u

/* Who holds a slot, for statistics (the owner hash decides). */
struct qos_iso_key {
	__u8 family;          /* 4 or 6 */
	__u8 proto;           /* flows: L4 protocol (0xff unknown); hosts: 0 */
	__u8 kind;            /* 1 flow, 2 host */
	__u8 pad;
	__u16 sport, dport;   /* host order; flows with ports only */
	__u8 saddr[16];       /* flows: both addresses; hosts: the host in saddr */
	__u8 daddr[16];
};

/* Map "qos_iso_slots": BPF_MAP_TYPE_ARRAY, every isolated class's slots
 * (the manifest gives each class's first index): mode flows: `slots`
 * entries; saddr/daddr: `slots` hosts, then slots * F flows (host h's flows
 * at slots + h * F). A slot is free when owner is 0 or it has been idle for
 * QOS_ISO_IDLE_NS. */
struct qos_iso_slot {
	__u64 owner;          /* hash of the key, never 0; 0 = never used */
	__u64 last_ns;        /* coarse time of its last packet */
	__u64 tat_ns;         /* sparse meter: theoretical arrival time */
	__u64 packets;        /* packets steered here (approximate across CPUs) */
	struct qos_iso_key key;
};
#define QOS_ISO_IDLE_NS 1000000000ull

/* Map "qos_iso_index": BPF_MAP_TYPE_ARRAY, open-addressed key hash -> slot
 * (4 probes), a power of two entries per isolated class. A hit is only
 * trusted when the slot's owner is still the same hash. */
struct qos_iso_index {
	__u64 owner;
	__u32 slot;           /* index into qos_iso_slots */
	__u32 pad;
};
#define QOS_ISO_PROBES 4

/* Map "qos_iso_stats": BPF_MAP_TYPE_PERCPU_ARRAY, key class id. */
struct qos_iso_counters {
	__u64 claims;         /* slots taken by a new flow or host */
	__u64 overflows;      /* packets of a flow/host that found no free slot (shares one) */
	__u64 sparse;         /* packets sent to the class's sparse leaf */
	__u64 nat_found;      /* hosts read from conntrack (`nat`) */
};

/* ---- adaptive link rate (additive since ABI 1; docs/language.md, docs/adaptive.md) ----
 * The identifier of the ICMP / ICMPv6 echo requests that qosrun's
 * adaptive-rate controller sends to its reflectors (their replies carry it
 * too). The controller measures the delay of the queue beyond the shaper (the
 * modem's), so the programs of an adaptive policy let these packets bypass
 * the classes: the TC program sets skb->priority = QOS_HTB_MAJOR << 16, the
 * HTB qdisc's own handle, which sch_htb sends from its direct queue, unshaped
 * and ahead of the classes; XDP passes them unpoliced (templates/qos_probe.h).
 * Any host's echo with this identifier bypasses the same way (a LAN host
 * could ping past the shaper): only ICMP echo, and the direct queue is
 * bounded (the interface's txqueuelen). Equal to QOS_META_MAGIC. */
#define QOS_PROBE_ICMP_ID 0x51c0


/* ---- hosts and plans (additive since ABI 1; docs/hosts.md) ----
 * A policy with `hosts saddr|daddr [nat]` and `plan`s has the map
 * "qos_hosts": BPF_MAP_TYPE_LPM_TRIE (BPF_F_NO_PREALLOC), key struct
 * qos_host_key, value struct qos_host_val, QOS_HOST_PREFIXES entries unless
 * qosrun resizes it before load. qosrun fills it from the host table, one
 * entry per prefix; IPv4 prefixes are stored IPv4-mapped (::ffff:a.b.c.d,
 * prefixlen 96 + len), so one trie holds both families.
 *
 * The TC program looks up the packet's host address (saddr or daddr; with
 * `nat`, conntrack's original address as for `isolate ... nat`). A packet of
 * a listed host goes into that host's subtree:
 *   skb->priority        = v->outer_classid (the leaf of the host's group in
 *                          the queue's root HTB, which holds the group's HTB)
 *   skb->cb[QOS_CB_HOST] = (v->group_major << 16) | (v->minor_base + leaf),
 *                          leaf = cls when bit cls of v->class_mask is set,
 *                          else v->default_leaf (the plan lacks the class)
 *   skb->queue_mapping   = v->queue, unless it is QOS_HOST_ANY_QUEUE
 * What the kernel makes of that queue_mapping (measured on 6.18, veth with 4
 * TX queues under mq, TC egress program as generated; the TX queue is chosen
 * after the egress hook): for a packet without a socket's cached queue and
 * on a device without XPS, netdev_pick_tx reads it as a recorded RX queue,
 * so queue_mapping q >= 1 sends the packet to TX queue q - 1 (mq class 1:q)
 * and q = 0 is hashed like an unlisted host's (measured with unconnected UDP
 * sockets). By netdev_pick_tx's code (not measured here), a socket's cached
 * TX queue or the device's XPS map take precedence over it.
 * Each group's HTB qdisc has one filter that returns cb[QOS_CB_HOST] (the
 * same classic cls_bpf program as isolation's). A packet of no listed host is
 * classified as without hosts, and cb[QOS_CB_HOST] is 0.
 *
 * Full-length prefixes (IPv4 /32, IPv6 /128: one address) may also live in
 * "qos_hosts_exact" (QOS_HOSTS_EXACT_MAP, additive): BPF_MAP_TYPE_HASH
 * (BPF_F_NO_PREALLOC), key struct qos_host_addr (the 16 bytes of the trie's
 * key, IPv4-mapped), value struct qos_host_val, as many entries as qos_hosts.
 * The TC program looks there first and in the trie only on a miss: a
 * full-length prefix is the longest match of its address, so this is the
 * trie's answer, found by one hash lookup instead of a walk of ~14 nodes at
 * 10,000 hosts. qosrun writes a full-length prefix there, not in the trie,
 * when the object has the map; one written into the trie is found all the
 * same (older qosrun, tests), only slower. */
#define QOS_CB_HOST 3
#define QOS_HOSTS_EXACT_MAP "qos_hosts_exact"
#define QOS_HOST_PREFIXES 65536
#define QOS_HOST_ANY_QUEUE 0xffffu
/* Steering (attach --steer-from; additive): the policy's XDP program
 * "qos_steer" (manifest hosts.steer_prog) looks a packet's host up in the same
 * two maps and redirects it into "qos_steer_cpus", a BPF_MAP_TYPE_CPUMAP with
 * one entry per possible CPU (max_entries set by qosrun at load), to CPU
 * queue - 1 of the host's value; an absent entry, or no listed host, passes
 * on the receiving CPU. qosrun fills the entries of CPUs 0 .. TX queues - 1. */
#define QOS_STEER_CPUS_MAP "qos_steer_cpus"
struct qos_host_key {
	__u32 prefixlen;      /* 96 + len for IPv4 */
	__u8 addr[16];        /* network order; IPv4 as ::ffff:a.b.c.d */
};
struct qos_host_addr {
	__u8 addr[16];        /* qos_host_key's addr of a full-length prefix */
};
struct qos_host_val {
	__u32 outer_classid;  /* skb->priority: the group's leaf in the root HTB */
	__u16 group_major;    /* the group's HTB qdisc handle (major) */
	__u16 minor_base;     /* the host's leaves are group_major:(minor_base + class id) */
	__u64 class_mask;     /* classes the host's plan has a leaf for (bit = class id) */
	__u32 default_leaf;   /* class id whose leaf takes the classes the plan lacks */
	/* The value written to skb->queue_mapping: TX queue q + 1, or
	 * QOS_HOST_ANY_QUEUE (not written). On egress the kernel takes a
	 * queue_mapping of q + 1 as a recorded queue q and, with XPS off for a
	 * packet without a socket's cached queue, transmits on q (skb_tx_hash);
	 * qosrun turns XPS off on an mq interface it shapes by host. */
	__u16 queue;
	__u16 pad;
	__u32 host_id;        /* qosrun's id of the host (statistics) */
	__u32 reserved;
};

#endif /* QOS_ABI_H */
