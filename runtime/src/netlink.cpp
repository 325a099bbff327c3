// A small rtnetlink client: see qosrun/netlink.hpp.
#include "qosrun/netlink.hpp"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/gen_stats.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <linux/tc_act/tc_mirred.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

namespace qosrun::nl {

namespace {

constexpr size_t align4(size_t n) { return (n + 3u) & ~size_t{3}; }

nlmsghdr* hdr_of(std::vector<uint8_t>& b) { return reinterpret_cast<nlmsghdr*>(b.data()); }

std::string kernel_extack(const nlmsghdr* h) {
  // NLMSG_ERROR: struct nlmsgerr, then (with NLM_F_ACK_TLVS) attributes. With
  // NETLINK_CAP_ACK the echoed request is only its header.
  if (!(h->nlmsg_flags & NLM_F_ACK_TLVS)) return {};
  const auto* err = reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(h));
  size_t off = NLMSG_HDRLEN + sizeof(nlmsgerr);
  if (!(h->nlmsg_flags & NLM_F_CAPPED)) off += err->msg.nlmsg_len - NLMSG_HDRLEN;
  if (off >= h->nlmsg_len) return {};
  const auto* base = reinterpret_cast<const uint8_t*>(h);
  Attrs a = parse_attrs({base + off, h->nlmsg_len - off});
  return a.str(NLMSGERR_ATTR_MSG).value_or("");
}

}  // namespace

// ---- NlMessage ---------------------------------------------------------------------

NlMessage::NlMessage(uint16_t type, uint16_t flags) {
  buf_.resize(NLMSG_HDRLEN, 0);
  nlmsghdr* h = hdr_of(buf_);
  h->nlmsg_len = NLMSG_HDRLEN;
  h->nlmsg_type = type;
  h->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | flags);
}

NlMessage& NlMessage::bytes(const void* p, size_t n) {
  size_t off = buf_.size();
  buf_.resize(off + align4(n), 0);
  if (n) std::memcpy(buf_.data() + off, p, n);
  hdr_of(buf_)->nlmsg_len = static_cast<uint32_t>(buf_.size());
  return *this;
}

NlMessage& NlMessage::attr(uint16_t type, const void* data, size_t len) {
  nlattr a{};
  a.nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
  a.nla_type = type;
  size_t off = buf_.size();
  buf_.resize(off + NLA_HDRLEN + align4(len), 0);
  std::memcpy(buf_.data() + off, &a, sizeof a);
  if (len) std::memcpy(buf_.data() + off + NLA_HDRLEN, data, len);
  hdr_of(buf_)->nlmsg_len = static_cast<uint32_t>(buf_.size());
  return *this;
}

NlMessage& NlMessage::attr_str(uint16_t type, const std::string& s) { return attr(type, s.c_str(), s.size() + 1); }

size_t NlMessage::begin(uint16_t type) {
  size_t off = buf_.size();
  attr(type, nullptr, 0);
  return off;
}

NlMessage& NlMessage::end(size_t token) {
  auto* a = reinterpret_cast<nlattr*>(buf_.data() + token);
  a->nla_len = static_cast<uint16_t>(buf_.size() - token);
  return *this;
}

uint16_t NlMessage::type() const { return reinterpret_cast<const nlmsghdr*>(buf_.data())->nlmsg_type; }

// ---- Attrs ------------------------------------------------------------------------------

Attrs parse_attrs(std::span<const uint8_t> payload) {
  Attrs out;
  size_t off = 0;
  while (off + NLA_HDRLEN <= payload.size()) {
    nlattr a;
    std::memcpy(&a, payload.data() + off, sizeof a);
    if (a.nla_len < NLA_HDRLEN || off + a.nla_len > payload.size()) break;
    out.items.emplace_back(a.nla_type, payload.subspan(off + NLA_HDRLEN, a.nla_len - NLA_HDRLEN));
    off += align4(a.nla_len);
  }
  return out;
}

std::optional<std::span<const uint8_t>> Attrs::get(uint16_t type) const {
  std::optional<std::span<const uint8_t>> r;
  for (const auto& [t, p] : items)
    if ((t & NLA_TYPE_MASK) == type) r = p;
  return r;
}

std::optional<std::string> Attrs::str(uint16_t type) const {
  auto p = get(type);
  if (!p) return std::nullopt;
  std::string s(reinterpret_cast<const char*>(p->data()), p->size());
  while (!s.empty() && s.back() == '\0') s.pop_back();
  return s;
}

std::optional<uint32_t> Attrs::u32(uint16_t type) const {
  auto p = get(type);
  if (!p || p->size() < 4) return std::nullopt;
  uint32_t v;
  std::memcpy(&v, p->data(), 4);
  return v;
}

// ---- RtnlSocket ------------------------------------------------------------------------------

Result<RtnlSocket> RtnlSocket::open() {
  int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return errno_error(errno, "cannot open a netlink socket");
  RtnlSocket s;
  s.fd_.reset(fd);
  int one = 1;
  // Best effort: older kernels lack them, messages are then only less helpful.
  (void)setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  (void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  int rcv = 1 << 20;
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  timeval tv{10, 0};   // the kernel always answers; never hang if it does not
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
    return errno_error(errno, "cannot bind a netlink socket");
  s.seq_ = static_cast<uint32_t>(::getpid()) * 7919u;
  return s;
}

namespace {

Error nl_error(int err, const std::string& what, const std::string& extack) {
  Error e = errno_error(err, what);
  if (!extack.empty()) {
    // errno_error may have appended a hint line; the kernel's words go on the first line.
    auto nlpos = e.message.find('\n');
    std::string first = nlpos == std::string::npos ? e.message : e.message.substr(0, nlpos);
    std::string rest = nlpos == std::string::npos ? "" : e.message.substr(nlpos);
    e.message = first + " (kernel: " + extack + ")" + rest;
  }
  return e;
}

}  // namespace

Status RtnlSocket::send(NlMessage& msg, uint16_t flags, const std::string& what) {
  nlmsghdr* h = hdr_of(msg.buffer());
  h->nlmsg_flags |= flags;
  h->nlmsg_seq = ++seq_;
  sockaddr_nl to{};
  to.nl_family = AF_NETLINK;
  if (::sendto(fd_.get(), msg.buffer().data(), msg.buffer().size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0)
    return errno_error(errno, what);
  return {};
}

Status RtnlSocket::receive(uint32_t seq, size_t buffer_size, const std::string& what,
                           const std::function<void(const nlmsghdr*)>* each) {
  if (rx_.size() < buffer_size) rx_.resize(buffer_size);
  std::span<uint8_t> buf(rx_.data(), buffer_size);
  for (;;) {
    ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error(errno, what);
    }
    for (auto* r = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(r, static_cast<unsigned>(n));
         r = NLMSG_NEXT(r, n)) {
      if (r->nlmsg_seq != seq) continue;
      if (r->nlmsg_type == NLMSG_DONE) return {};
      if (r->nlmsg_type == NLMSG_ERROR) {
        const auto* e = reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(r));
        if (e->error == 0) return {};
        return nl_error(-e->error, what, kernel_extack(r));
      }
      if (each) (*each)(r);
    }
  }
}

std::vector<RtnlSocket::BatchFailure> RtnlSocket::batch(std::span<NlMessage> msgs) {
  std::vector<BatchFailure> failed;
  // QOSRUN_NETLINK_BATCH=0: one request per sendmsg, for measuring what batching gives (bench/hosts).
  static const size_t kChunkBytes = [] {
    const char* e = std::getenv("QOSRUN_NETLINK_BATCH");
    return e && std::string(e) == "0" ? size_t{1} : size_t{32 * 1024};
  }();
  std::vector<uint8_t> out;
  size_t i = 0;
  while (i < msgs.size()) {
    // One chunk: as many messages as fit, at least one.
    out.clear();
    const size_t first = i;
    const uint32_t first_seq = seq_ + 1;
    while (i < msgs.size() && (i == first || out.size() + msgs[i].buffer().size() <= kChunkBytes)) {
      nlmsghdr* h = hdr_of(msgs[i].buffer());
      h->nlmsg_flags |= NLM_F_ACK;
      h->nlmsg_seq = ++seq_;
      out.insert(out.end(), msgs[i].buffer().begin(), msgs[i].buffer().end());
      ++i;
    }
    const size_t count = i - first;
    auto fail_rest = [&](const Error& e, const std::vector<bool>& done) {
      for (size_t k = 0; k < count; ++k)
        if (!done[k]) failed.push_back({first + k, e});
    };
    std::vector<bool> done(count, false);
    sockaddr_nl to{};
    to.nl_family = AF_NETLINK;
    if (::sendto(fd_.get(), out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
      fail_rest(errno_error(errno, "cannot send to the kernel"), done);
      continue;
    }
    if (rx_.size() < 64 * 1024) rx_.resize(64 * 1024);
    size_t acked = 0;
    while (acked < count) {
      ssize_t n = ::recv(fd_.get(), rx_.data(), rx_.size(), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail_rest(errno_error(errno, "no answer from the kernel"), done);
        break;
      }
      for (auto* r = reinterpret_cast<nlmsghdr*>(rx_.data()); NLMSG_OK(r, static_cast<unsigned>(n));
           r = NLMSG_NEXT(r, n)) {
        if (r->nlmsg_type != NLMSG_ERROR) continue;
        uint32_t k = r->nlmsg_seq - first_seq;
        if (k >= count || done[k]) continue;
        done[k] = true;
        ++acked;
        const auto* e = reinterpret_cast<const nlmsgerr*>(NLMSG_DATA(r));
        if (e->error != 0) {
          std::string extack = kernel_extack(r);
          Error err = errno_error(-e->error, "");
          err.message = std::strerror(-e->error);
          if (!extack.empty()) err.message += " (kernel: " + extack + ")";
          failed.push_back({first + k, std::move(err)});
        }
      }
    }
  }
  return failed;
}

Status RtnlSocket::request(NlMessage& msg, const std::string& what) {
  if (Status st = send(msg, NLM_F_ACK, what); !st) return st;
  return receive(hdr_of(msg.buffer())->nlmsg_seq, 64 * 1024, what, nullptr);
}

Status RtnlSocket::dump(NlMessage& msg, const std::string& what, const std::function<void(const nlmsghdr*)>& each) {
  if (Status st = send(msg, NLM_F_DUMP, what); !st) return st;
  return receive(hdr_of(msg.buffer())->nlmsg_seq, 256 * 1024, what, &each);
}

// ---- listing --------------------------------------------------------------------------------

std::string ifname_of(int ifindex) {
  char name[IF_NAMESIZE] = {};
  if (!if_indextoname(static_cast<unsigned>(ifindex), name)) return fmt::format("ifindex {}", ifindex);
  return name;
}

namespace {

std::span<const uint8_t> tc_payload(const nlmsghdr* h) {
  const auto* base = reinterpret_cast<const uint8_t*>(NLMSG_DATA(h));
  size_t len = h->nlmsg_len - NLMSG_HDRLEN;
  size_t hl = NLMSG_ALIGN(sizeof(tcmsg));
  if (len < hl) return {};
  return {base + hl, len - hl};
}

tcmsg tc_header(int ifindex, uint32_t parent, uint32_t handle, uint32_t info = 0) {
  tcmsg t{};
  t.tcm_family = AF_UNSPEC;
  t.tcm_ifindex = ifindex;
  t.tcm_parent = parent;
  t.tcm_handle = handle;
  t.tcm_info = info;
  return t;
}

// TCA_STATS2 of a qdisc or class dump.
TcCounters counters_of(const Attrs& a) {
  TcCounters c;
  c.found = true;
  auto st2 = a.get(TCA_STATS2);
  if (!st2) return c;
  Attrs b = parse_attrs(*st2);
  if (auto q = b.get(TCA_STATS_QUEUE); q && q->size() >= sizeof(gnet_stats_queue)) {
    gnet_stats_queue gq;
    std::memcpy(&gq, q->data(), sizeof gq);
    c.backlog_bytes = gq.backlog;
    c.qlen = gq.qlen;
    c.drops = gq.drops;
    c.overlimits = gq.overlimits;
  }
  if (auto b64 = b.get(TCA_STATS_BASIC); b64 && b64->size() >= sizeof(gnet_stats_basic)) {
    gnet_stats_basic gb;
    std::memcpy(&gb, b64->data(), sizeof gb);
    c.bytes = gb.bytes;
    c.packets = gb.packets;
  }
  return c;
}

// An HTB class's TCA_OPTIONS: tc_htb_opt, with 64-bit rates beside it above 4 GByte/s.
void read_htb_options(const Attrs& a, ClassInfo& c) {
  auto opts = a.get(TCA_OPTIONS);
  if (!opts) return;
  Attrs o = parse_attrs(*opts);
  if (auto p = o.get(TCA_HTB_PARMS); p && p->size() >= sizeof(tc_htb_opt)) {
    tc_htb_opt h;
    std::memcpy(&h, p->data(), sizeof h);
    c.rate_bps = uint64_t(h.rate.rate) * 8;
    c.ceil_bps = uint64_t(h.ceil.rate) * 8;
    c.prio = h.prio;
    c.quantum = h.quantum;
  }
  auto u64 = [&](uint16_t type, uint64_t& out) {
    if (auto v = o.get(type); v && v->size() >= sizeof(uint64_t)) {
      uint64_t bytes;
      std::memcpy(&bytes, v->data(), sizeof bytes);
      out = bytes * 8;
    }
  };
  u64(TCA_HTB_RATE64, c.rate_bps);
  u64(TCA_HTB_CEIL64, c.ceil_bps);
}

}  // namespace

Result<std::vector<QdiscInfo>> list_qdiscs(RtnlSocket& s, int ifindex) {
  NlMessage m(RTM_GETQDISC, 0);
  m.header(tc_header(ifindex, 0, 0));
  std::vector<QdiscInfo> out;
  Status st = s.dump(m, fmt::format("cannot list the qdiscs of {}", ifname_of(ifindex)), [&](const nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWQDISC) return;
    const auto* t = reinterpret_cast<const tcmsg*>(NLMSG_DATA(h));
    if (t->tcm_ifindex != ifindex) return;
    QdiscInfo q;
    q.ifindex = t->tcm_ifindex;
    q.handle = t->tcm_handle;
    q.parent = t->tcm_parent;
    auto payload = tc_payload(h);
    Attrs a = parse_attrs(payload);
    q.kind = a.str(TCA_KIND).value_or("");
    for (const auto& [type, p] : a.items) {
      if ((type & NLA_TYPE_MASK) != TCA_OPTIONS) continue;
      q.has_options = true;
      q.options_type = type;
      q.options.assign(p.begin(), p.end());
    }
    q.counters = counters_of(a);
    out.push_back(std::move(q));
  });
  if (!st) return st.error();
  return out;
}

Result<std::optional<QdiscInfo>> root_qdisc(RtnlSocket& s, int ifindex) {
  auto all = list_qdiscs(s, ifindex);
  if (!all) return all.error();
  for (auto& q : *all)
    if (q.parent == TC_H_ROOT) return std::optional<QdiscInfo>(std::move(q));
  return std::optional<QdiscInfo>();
}

Result<std::vector<ClassInfo>> list_classes(RtnlSocket& s, int ifindex, uint32_t parent_handle) {
  NlMessage m(RTM_GETTCLASS, 0);
  m.header(tc_header(ifindex, parent_handle, 0));
  std::vector<ClassInfo> out;
  Status st = s.dump(m, fmt::format("cannot list the classes of {}", ifname_of(ifindex)), [&](const nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWTCLASS) return;
    const auto* t = reinterpret_cast<const tcmsg*>(NLMSG_DATA(h));
    if (t->tcm_ifindex != ifindex) return;
    ClassInfo c;
    c.handle = t->tcm_handle;
    c.parent = t->tcm_parent;
    c.leaf = t->tcm_info;
    Attrs a = parse_attrs(tc_payload(h));
    c.kind = a.str(TCA_KIND).value_or("");
    c.counters = counters_of(a);
    if (c.kind == "htb") read_htb_options(a, c);
    out.push_back(std::move(c));
  });
  if (!st) return st.error();
  return out;
}

Result<size_t> count_filters(RtnlSocket& s, int ifindex, uint32_t parent) {
  NlMessage m(RTM_GETTFILTER, 0);
  m.header(tc_header(ifindex, parent, 0));
  size_t n = 0;
  Status st = s.dump(m, fmt::format("cannot list the filters of {}", ifname_of(ifindex)), [&](const nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWTFILTER) return;
    const auto* t = reinterpret_cast<const tcmsg*>(NLMSG_DATA(h));
    // A dump lists one message per filter priority (handle 0, the chain
    // head) and one per filter; count real filters only.
    if (t->tcm_ifindex == ifindex && t->tcm_handle != 0) ++n;
  });
  if (!st) {
    // No qdisc at that parent: no filters.
    if (st.error().code == EINVAL || st.error().code == ENOENT) return size_t{0};
    return st.error();
  }
  return n;
}

Result<TcCounters> class_counters(RtnlSocket& s, int ifindex, uint32_t classid) {
  // The kernel dumps only the classes of the qdisc named by tcm_parent's major.
  auto all = list_classes(s, ifindex, TC_H_MAJ(classid));
  if (!all) return all.error();
  for (const auto& c : *all)
    if (c.handle == classid) return c.counters;
  return TcCounters{};
}

namespace {
TcCounters counters_of(const nlmsghdr* h) { return counters_of(parse_attrs(tc_payload(h))); }
}  // namespace

Result<std::vector<std::pair<uint32_t, TcCounters>>> qdisc_class_counters(RtnlSocket& s, int ifindex,
                                                                           uint32_t qdisc_handle) {
  NlMessage m(RTM_GETTCLASS, 0);
  m.header(tc_header(ifindex, TC_H_MAJ(qdisc_handle), 0));
  std::vector<std::pair<uint32_t, TcCounters>> out;
  Status st = s.dump(m, "cannot read class statistics", [&](const nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWTCLASS) return;
    const auto* t = reinterpret_cast<const tcmsg*>(NLMSG_DATA(h));
    if (t->tcm_ifindex != ifindex || TC_H_MAJ(t->tcm_handle) != TC_H_MAJ(qdisc_handle)) return;
    out.emplace_back(t->tcm_handle, counters_of(h));
  });
  if (!st) return st.error();
  return out;
}

Result<uint64_t> class_backlog(RtnlSocket& s, int ifindex, uint32_t classid) {
  auto c = class_counters(s, ifindex, classid);
  if (!c) return c.error();
  return c->backlog_bytes;
}

std::string handle_string(uint32_t h) {
  if (h == TC_H_ROOT) return "root";
  uint32_t maj = TC_H_MAJ(h) >> 16, min = TC_H_MIN(h);
  if (min == 0) return fmt::format("{:x}:", maj);
  return fmt::format("{:x}:{:x}", maj, min);
}

std::string describe(const QdiscInfo& q) { return fmt::format("{} {}", q.kind, handle_string(q.handle)); }

// ---- changes ----------------------------------------------------------------------------------

Status replay_root_qdisc(RtnlSocket& s, const QdiscInfo& q) {
  NlMessage m(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE);
  m.header(tc_header(q.ifindex, TC_H_ROOT, q.handle));
  m.attr_str(TCA_KIND, q.kind);
  if (q.has_options) m.attr(q.options_type, q.options.data(), q.options.size());
  return s.request(m, fmt::format("cannot put back the root qdisc {} on {}", describe(q), ifname_of(q.ifindex)));
}

Status add_root_qdisc(RtnlSocket& s, int ifindex, uint32_t handle, const std::string& kind) {
  NlMessage m(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE);
  m.header(tc_header(ifindex, TC_H_ROOT, handle));
  m.attr_str(TCA_KIND, kind);
  return s.request(m, fmt::format("cannot make {} {} the root qdisc of {}", kind, handle_string(handle),
                                  ifname_of(ifindex)));
}

Status delete_root_qdisc(RtnlSocket& s, int ifindex) {
  NlMessage m(RTM_DELQDISC, 0);
  m.header(tc_header(ifindex, TC_H_ROOT, 0));
  return s.request(m, fmt::format("cannot delete the root qdisc of {}", ifname_of(ifindex)));
}

NlMessage delete_qdisc_message(int ifindex, uint32_t parent, uint32_t handle) {
  NlMessage m(RTM_DELQDISC, 0);
  m.header(tc_header(ifindex, parent, handle));
  return m;
}

Status delete_qdisc(RtnlSocket& s, int ifindex, uint32_t parent, uint32_t handle) {
  NlMessage m = delete_qdisc_message(ifindex, parent, handle);
  return s.request(m, fmt::format("cannot delete qdisc {} of {}", handle_string(handle), ifname_of(ifindex)));
}

NlMessage htb_qdisc_message(int ifindex, const HtbRootSpec& spec) {
  const bool root = spec.parent == TC_H_ROOT;
  NlMessage m(RTM_NEWQDISC, NLM_F_CREATE | (root ? NLM_F_REPLACE : NLM_F_EXCL));
  m.header(tc_header(ifindex, spec.parent, spec.handle));
  m.attr_str(TCA_KIND, "htb");
  size_t opt = m.begin(TCA_OPTIONS);
  tc_htb_glob g{};
  g.version = TC_HTB_PROTOVER;
  g.rate2quantum = spec.r2q;
  g.defcls = spec.default_minor;
  m.attr_struct(TCA_HTB_INIT, g);
  m.end(opt);
  return m;
}

Status add_htb_root(RtnlSocket& s, int ifindex, const HtbRootSpec& spec) {
  const bool root = spec.parent == TC_H_ROOT;
  NlMessage m = htb_qdisc_message(ifindex, spec);
  if (!root)
    return s.request(m, fmt::format("cannot create the HTB qdisc {} below class {} on {}", handle_string(spec.handle),
                                    handle_string(spec.parent), ifname_of(ifindex)));
  return s.request(m, fmt::format("cannot create the HTB root qdisc {} on {}", handle_string(spec.handle),
                                  ifname_of(ifindex)));
}

namespace {

// psched ticks are 64 ns (PSCHED_SHIFT 6) on every kernel qosrun supports.
uint32_t xmit_ticks(uint64_t bytes, uint64_t rate_bps) {
  if (rate_bps == 0) return 0;
  long double ns = (long double)bytes * 8e9L / (long double)rate_bps;
  long double ticks = ns / 64.0L;
  return ticks > 4e9L ? 4000000000u : static_cast<uint32_t>(ticks);
}

tc_ratespec ratespec(uint64_t bps) {
  tc_ratespec r{};
  uint64_t Bps = bps / 8;
  r.rate = Bps >= 0xffffffffull ? 0xffffffffu : static_cast<uint32_t>(Bps);
  r.linklayer = TC_LINKLAYER_ETHERNET;
  return r;
}

}  // namespace

NlMessage htb_class_message(int ifindex, const HtbClassParams& p, bool create) {
  NlMessage m(RTM_NEWTCLASS, create ? (NLM_F_CREATE | NLM_F_EXCL) : 0);
  m.header(tc_header(ifindex, p.parent, p.classid));
  m.attr_str(TCA_KIND, "htb");
  size_t opt = m.begin(TCA_OPTIONS);
  tc_htb_opt o{};
  o.rate = ratespec(p.rate_bps);
  o.ceil = ratespec(p.ceil_bps);
  o.buffer = xmit_ticks(p.burst_bytes, p.rate_bps);
  o.cbuffer = xmit_ticks(p.cburst_bytes, p.ceil_bps);
  o.quantum = p.quantum;
  o.prio = p.prio;
  m.attr_struct(TCA_HTB_PARMS, o);
  if (p.rate_bps / 8 >= 0xffffffffull) m.attr_u64(TCA_HTB_RATE64, p.rate_bps / 8);
  if (p.ceil_bps / 8 >= 0xffffffffull) m.attr_u64(TCA_HTB_CEIL64, p.ceil_bps / 8);
  m.end(opt);
  return m;
}

Status add_htb_class(RtnlSocket& s, int ifindex, const HtbClassParams& p) {
  NlMessage m = htb_class_message(ifindex, p, true);
  return s.request(m, fmt::format("cannot create HTB class {} on {}", handle_string(p.classid), ifname_of(ifindex)));
}

Status change_htb_class(RtnlSocket& s, int ifindex, const HtbClassParams& p) {
  NlMessage m = htb_class_message(ifindex, p, false);
  return s.request(m, fmt::format("cannot change HTB class {} on {}", handle_string(p.classid), ifname_of(ifindex)));
}

NlMessage delete_class_message(int ifindex, uint32_t classid) {
  NlMessage m(RTM_DELTCLASS, 0);
  m.header(tc_header(ifindex, 0, classid));
  return m;
}

Status delete_class(RtnlSocket& s, int ifindex, uint32_t classid) {
  NlMessage m = delete_class_message(ifindex, classid);
  return s.request(m, fmt::format("cannot delete class {} on {}", handle_string(classid), ifname_of(ifindex)));
}

NlMessage bfifo_message(int ifindex, uint32_t parent, uint32_t handle, uint32_t limit, uint16_t flags) {
  NlMessage m(RTM_NEWQDISC, flags);
  m.header(tc_header(ifindex, parent, handle));
  m.attr_str(TCA_KIND, "bfifo");
  tc_fifo_qopt q{};
  q.limit = limit;
  m.attr_struct(TCA_OPTIONS, q);
  return m;
}

NlMessage frame_queue_message(int ifindex, uint32_t parent, uint32_t handle, uint32_t limit, uint32_t split_above,
                              uint16_t flags) {
  constexpr uint64_t kNeverLimits = 1'000'000'000'000ull;   // bit/s: a 3 KB burst refills in 24 ns
  NlMessage m(RTM_NEWQDISC, flags);
  m.header(tc_header(ifindex, parent, handle));
  m.attr_str(TCA_KIND, "tbf");
  size_t opt = m.begin(TCA_OPTIONS);
  tc_tbf_qopt q{};
  q.rate = ratespec(kNeverLimits);
  q.limit = limit;
  q.buffer = xmit_ticks(split_above, kNeverLimits);
  m.attr_struct(TCA_TBF_PARMS, q);
  m.attr_u64(TCA_TBF_RATE64, kNeverLimits / 8);
  m.attr_u32(TCA_TBF_BURST, split_above);
  m.end(opt);
  return m;
}

// ---- links ------------------------------------------------------------------------------------

Result<int> create_ifb(RtnlSocket& s, const std::string& name) {
  NlMessage m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  m.header(ifi);
  m.attr_str(IFLA_IFNAME, name);
  size_t li = m.begin(IFLA_LINKINFO);
  m.attr_str(IFLA_INFO_KIND, "ifb");
  m.end(li);
  Status st = s.request(m, fmt::format("cannot create the IFB device {} for --ingress-shape", name));
  if (!st) {
    Error e = st.error();
    if (e.code == EOPNOTSUPP || e.code == ENOENT)
      e.message += "\n  this kernel has no IFB support (CONFIG_IFB): run without --ingress-shape";
    return e;
  }
  unsigned idx = if_nametoindex(name.c_str());
  if (idx == 0) return errno_error(errno, fmt::format("created {} but cannot find it", name));
  return static_cast<int>(idx);
}

Status set_link_up(RtnlSocket& s, int ifindex) {
  NlMessage m(RTM_NEWLINK, 0);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifindex;
  ifi.ifi_flags = IFF_UP;
  ifi.ifi_change = IFF_UP;
  m.header(ifi);
  return s.request(m, fmt::format("cannot set {} up", ifname_of(ifindex)));
}

Status delete_link(RtnlSocket& s, int ifindex) {
  NlMessage m(RTM_DELLINK, 0);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = ifindex;
  m.header(ifi);
  return s.request(m, fmt::format("cannot delete {}", ifname_of(ifindex)));
}

Status add_ingress_redirect(RtnlSocket& s, int ifindex, int target, uint32_t prio) {
  // tc filter add dev IF ingress prio P protocol all u32 match u32 0 0
  //   action mirred egress redirect dev TARGET
  NlMessage m(RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL);
  uint16_t proto = htons(ETH_P_ALL);
  m.header(tc_header(ifindex, TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS), 0, TC_H_MAKE(prio << 16, proto)));
  m.attr_str(TCA_KIND, "u32");
  size_t opt = m.begin(TCA_OPTIONS);
  std::vector<uint8_t> sel(sizeof(tc_u32_sel) + sizeof(tc_u32_key), 0);
  auto* sp = reinterpret_cast<tc_u32_sel*>(sel.data());
  sp->flags = TC_U32_TERMINAL;
  sp->nkeys = 1;   // one key: mask 0, value 0 at offset 0 - matches every packet
  m.attr(TCA_U32_SEL, sel.data(), sel.size());
  size_t acts = m.begin(TCA_U32_ACT);
  size_t a1 = m.begin(1);
  m.attr_str(TCA_ACT_KIND, "mirred");
  size_t aopt = m.begin(TCA_ACT_OPTIONS);
  tc_mirred mp{};
  mp.action = TC_ACT_STOLEN;
  mp.eaction = TCA_EGRESS_REDIR;
  mp.ifindex = static_cast<uint32_t>(target);
  m.attr_struct(TCA_MIRRED_PARMS, mp);
  m.end(aopt);
  m.end(a1);
  m.end(acts);
  m.end(opt);
  return s.request(m, fmt::format("cannot redirect the ingress of {} to {}", ifname_of(ifindex), ifname_of(target)));
}

NlMessage classid_filter_message(int ifindex, uint32_t parent, int prog_fd, const std::string& name) {
  // tc filter add dev IF parent P prio 1 protocol all handle 1 bpf fd FD (not da)
  NlMessage m(RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL);
  m.header(tc_header(ifindex, parent, 1, TC_H_MAKE(1u << 16, htons(ETH_P_ALL))));
  m.attr_str(TCA_KIND, "bpf");
  size_t opt = m.begin(TCA_OPTIONS);
  m.attr_u32(TCA_BPF_FD, static_cast<uint32_t>(prog_fd));
  m.attr_str(TCA_BPF_NAME, name);
  m.attr_u32(TCA_BPF_FLAGS, 0);
  m.end(opt);
  return m;
}

Status add_classid_filter(RtnlSocket& s, int ifindex, uint32_t parent, int prog_fd, const std::string& name) {
  NlMessage m = classid_filter_message(ifindex, parent, prog_fd, name);
  return s.request(m, fmt::format("cannot attach the sub-queue filter to qdisc {} on {}", handle_string(parent),
                                  ifname_of(ifindex)));
}

Status delete_filter(RtnlSocket& s, int ifindex, uint32_t parent, uint32_t prio, uint32_t handle,
                     const std::string& kind) {
  NlMessage m(RTM_DELTFILTER, 0);
  m.header(tc_header(ifindex, parent, handle, TC_H_MAKE(prio << 16, htons(ETH_P_ALL))));
  if (!kind.empty()) m.attr_str(TCA_KIND, kind);
  return s.request(m, fmt::format("cannot delete filter {}/{} of {}", prio, handle, ifname_of(ifindex)));
}

uint32_t link_mtu(const std::string& ifname) {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 1500;
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  uint32_t mtu = 1500;
  if (::ioctl(fd, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 0) mtu = static_cast<uint32_t>(ifr.ifr_mtu);
  ::close(fd);
  return mtu;
}

uint32_t link_max_skb(const std::string& ifname) {
  // Older uapi headers lack the IPv4 variants (Linux 6.3).
  constexpr uint16_t kGsoIpv4MaxSize = 63, kGroIpv4MaxSize = 64;
  unsigned idx = if_nametoindex(ifname.c_str());
  if (idx == 0) return 0;
  auto s = RtnlSocket::open();
  if (!s) return 0;
  NlMessage m(RTM_GETLINK, 0);
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  m.header(ifi);
  uint32_t best = 0;
  Status st = s->dump(m, "cannot list links", [&](const nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWLINK || h->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) return;
    const auto* i = reinterpret_cast<const ifinfomsg*>(NLMSG_DATA(h));
    if (static_cast<unsigned>(i->ifi_index) != idx) return;
    const auto* base = reinterpret_cast<const uint8_t*>(NLMSG_DATA(h)) + NLMSG_ALIGN(sizeof(ifinfomsg));
    Attrs a = parse_attrs({base, h->nlmsg_len - NLMSG_LENGTH(NLMSG_ALIGN(sizeof(ifinfomsg)))});
    for (uint16_t t : {uint16_t{IFLA_GSO_MAX_SIZE}, uint16_t{IFLA_GRO_MAX_SIZE}, kGsoIpv4MaxSize, kGroIpv4MaxSize})
      if (auto v = a.u32(t)) best = std::max(best, *v);
  });
  return st ? best : 0;
}

}  // namespace qosrun::nl
