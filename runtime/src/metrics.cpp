// Prometheus text exposition of the statistics view and the tiny HTTP
// server that serves it. See qosrun/stats.hpp.
#include <algorithm>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "qos_abi.h"
#include "qosrun/stats.hpp"

namespace qosrun {

namespace {

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '\\') o += "\\\\";
    else if (c == '"') o += "\\\"";
    else if (c == '\n') o += "\\n";
    else o += c;
  }
  return o;
}

class Exposition {
 public:
  explicit Exposition(std::string base) : base_(std::move(base)) {}
  void family(const char* name, const char* type, const char* help) {
    out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  void value(const char* name, const std::string& extra, double v) {
    std::string labels = base_;
    if (!extra.empty()) labels += "," + extra;
    if (v == static_cast<double>(static_cast<uint64_t>(v)) && v >= 0 && v < 1.8e19)
      out_ += fmt::format("{}{{{}}} {}\n", name, labels, static_cast<uint64_t>(v));
    else
      out_ += fmt::format("{}{{{}}} {:.6g}\n", name, labels, v);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string base_, out_;
};

std::string lbl(const char* k, const std::string& v) { return fmt::format("{}=\"{}\"", k, esc(v)); }

}  // namespace

std::string prometheus_text(const View& v) {
  Exposition e(lbl("iface", v.ifname) + "," + lbl("policy", v.policy));
  auto cls = [](const ClassView& c) { return lbl("class", c.name); };
  const char* hooks[2] = {"xdp", "tc"};

  e.family("qosc_class_packets_total", "counter",
           "Packets the BPF program classified into the class (those its policer dropped included).");
  for (const auto& c : v.classes)
    for (int h = 0; h < 2; ++h)
      e.value("qosc_class_packets_total", cls(c) + "," + lbl("hook", hooks[h]),
              static_cast<double>(h == 0 ? c.xdp.packets : c.tc.packets));
  e.family("qosc_class_bytes_total", "counter", "Bytes (frame length) classified into the class.");
  for (const auto& c : v.classes)
    for (int h = 0; h < 2; ++h)
      e.value("qosc_class_bytes_total", cls(c) + "," + lbl("hook", hooks[h]),
              static_cast<double>(h == 0 ? c.xdp.bytes : c.tc.bytes));
  e.family("qosc_class_drops_total", "counter",
           "Packets of the class dropped: reason=policer (rate/burst at XDP or TC), reason=queue (HTB leaf full).");
  for (const auto& c : v.classes) {
    e.value("qosc_class_drops_total", cls(c) + ",hook=\"xdp\",reason=\"policer\"",
            static_cast<double>(c.xdp.drop_policer));
    e.value("qosc_class_drops_total", cls(c) + ",hook=\"tc\",reason=\"policer\"", static_cast<double>(c.tc.drop_policer));
    if (c.queue.present)
      e.value("qosc_class_drops_total", cls(c) + ",hook=\"tc\",reason=\"queue\"", static_cast<double>(c.queue.drops));
  }
  e.family("qosc_rule_drops_total", "counter", "Packets dropped by a `drop` rule.");
  e.value("qosc_rule_drops_total", "hook=\"xdp\"", static_cast<double>(v.rule_xdp.drop_rule));
  e.value("qosc_rule_drops_total", "hook=\"tc\"", static_cast<double>(v.rule_tc.drop_rule));
  if (v.interval_s > 0) {
    e.family("qosc_class_rate_bytes_per_second", "gauge", "Classified bytes per second over the last sampling interval.");
    for (const auto& c : v.classes)
      for (int h = 0; h < 2; ++h)
        e.value("qosc_class_rate_bytes_per_second", cls(c) + "," + lbl("hook", hooks[h]),
                (h == 0 ? c.xdp.bps : c.tc.bps) / 8);
  }

  // The adaptive rate: rates in bytes per second and delays in seconds, as
  // Prometheus' conventions ask.
  if (v.adaptive) {
    const adaptive::Snapshot& a = *v.adaptive;
    auto dir = [](const adaptive::DirectionView& d) { return lbl("direction", d.config.name); };
    e.family("qosc_adaptive_rate_bytes_per_second", "gauge", "The shaper's rate the adaptive controller set.");
    for (const auto* d : {&a.upload, &a.download})
      if (*d) e.value("qosc_adaptive_rate_bytes_per_second", dir(**d), static_cast<double>((*d)->rate_bps) / 8);
    e.family("qosc_adaptive_achieved_bytes_per_second", "gauge", "What the shaper sent, over the controller's window.");
    for (const auto* d : {&a.upload, &a.download})
      if (*d) e.value("qosc_adaptive_achieved_bytes_per_second", dir(**d), static_cast<double>((*d)->achieved_bps) / 8);
    e.family("qosc_adaptive_cuts_total", "counter", "Times the rate was cut because the delay rose.");
    for (const auto* d : {&a.upload, &a.download})
      if (*d) e.value("qosc_adaptive_cuts_total", dir(**d), static_cast<double>((*d)->cuts));
    e.family("qosc_adaptive_reflector_up", "gauge", "1 when the reflector answers and counts, 0 when it is left out.");
    for (const auto& r : a.reflectors) e.value("qosc_adaptive_reflector_up", lbl("reflector", r.addr), r.alive ? 1 : 0);
    e.family("qosc_adaptive_reflector_baseline_seconds", "gauge", "The reflector's round-trip time with empty queues.");
    for (const auto& r : a.reflectors)
      e.value("qosc_adaptive_reflector_baseline_seconds", lbl("reflector", r.addr), r.baseline_ms / 1e3);
    e.family("qosc_adaptive_reflector_delay_seconds", "gauge", "The last round-trip time minus the baseline.");
    for (const auto& r : a.reflectors)
      e.value("qosc_adaptive_reflector_delay_seconds", lbl("reflector", r.addr), r.delay_ms / 1e3);
    e.family("qosc_adaptive_holding", "gauge", "1 while every reflector is silent and the rate is held.");
    e.value("qosc_adaptive_holding", "", a.holding.empty() ? 0 : 1);
  }

  // Isolation: per class, and per active flow/host (its sub-queue's bytes).
  if (std::any_of(v.classes.begin(), v.classes.end(), [](const ClassView& c) { return c.iso.has_value(); })) {
    e.family("qosc_isolate_active", "gauge", "Flows or hosts of an isolated class that sent within the last second.");
    for (const auto& c : v.classes)
      if (c.iso) e.value("qosc_isolate_active", cls(c), static_cast<double>(c.iso->active.size()));
    e.family("qosc_isolate_overflows_total", "counter",
             "Packets of a flow or host that found every slot of its class busy and shared one.");
    for (const auto& c : v.classes)
      if (c.iso) e.value("qosc_isolate_overflows_total", cls(c), static_cast<double>(c.iso->counters.overflows));
    e.family("qosc_isolate_sparse_packets_total", "counter", "Packets sent ahead as a sparse flow's.");
    for (const auto& c : v.classes)
      if (c.iso) e.value("qosc_isolate_sparse_packets_total", cls(c), static_cast<double>(c.iso->counters.sparse));
    e.family("qosc_isolate_sent_bytes_total", "counter", "Bytes sent from an active flow's or host's sub-queue.");
    for (const auto& c : v.classes)
      if (c.iso)
        for (const auto& a : c.iso->active)
          e.value("qosc_isolate_sent_bytes_total", cls(c) + "," + lbl("member", a.who) + "," + lbl("queue", a.queue),
                  static_cast<double>(a.bytes));
  }

  // Queues: per class, or per SP-PIFO band.
  struct Q {
    std::string label;
    const QueueView* q;
  };
  std::vector<Q> qs;
  for (const auto& c : v.classes)
    if (c.queue.present) qs.push_back({cls(c) + ",direction=\"egress\"", &c.queue});
  for (size_t b = 0; b < v.bands.size(); ++b)
    if (v.bands[b].present) qs.push_back({lbl("band", std::to_string(b)) + ",direction=\"egress\"", &v.bands[b]});
  for (const auto& c : v.classes)
    if (c.ingress_queue.present) qs.push_back({cls(c) + ",direction=\"ingress\"", &c.ingress_queue});
  for (size_t b = 0; b < v.ifb_bands.size(); ++b)
    if (v.ifb_bands[b].present) qs.push_back({lbl("band", std::to_string(b)) + ",direction=\"ingress\"", &v.ifb_bands[b]});
  if (!qs.empty()) {
    e.family("qosc_queue_sent_bytes_total", "counter", "Bytes the HTB class sent.");
    for (const auto& q : qs) e.value("qosc_queue_sent_bytes_total", q.label, static_cast<double>(q.q->bytes));
    e.family("qosc_queue_sent_packets_total", "counter", "Packets the HTB class sent.");
    for (const auto& q : qs) e.value("qosc_queue_sent_packets_total", q.label, static_cast<double>(q.q->packets));
    e.family("qosc_queue_drops_total", "counter", "Packets the HTB class dropped (its bounded queue was full).");
    for (const auto& q : qs) e.value("qosc_queue_drops_total", q.label, static_cast<double>(q.q->drops));
    e.family("qosc_queue_overlimits_total", "counter", "HTB overlimit events of the class.");
    for (const auto& q : qs) e.value("qosc_queue_overlimits_total", q.label, static_cast<double>(q.q->overlimits));
    e.family("qosc_queue_backlog_bytes", "gauge", "Bytes queued in the class now.");
    for (const auto& q : qs) e.value("qosc_queue_backlog_bytes", q.label, static_cast<double>(q.q->backlog_bytes));
    e.family("qosc_queue_length_packets", "gauge", "Packets queued in the class now.");
    for (const auto& q : qs) e.value("qosc_queue_length_packets", q.label, static_cast<double>(q.q->qlen));
    e.family("qosc_queue_delay_seconds", "gauge",
             "Estimated queueing delay: backlog / (measured send rate, or ceil when idle).");
    for (const auto& q : qs) e.value("qosc_queue_delay_seconds", q.label, q.q->delay_ms / 1000.0);
    e.family("qosc_queue_ceil_bytes_per_second", "gauge", "Configured HTB ceil of the class.");
    for (const auto& q : qs) e.value("qosc_queue_ceil_bytes_per_second", q.label, static_cast<double>(q.q->ceil_bps) / 8);
  }
  if (v.link.present) {
    e.family("qosc_link_sent_bytes_total", "counter", "Bytes the root qdisc sent.");
    e.value("qosc_link_sent_bytes_total", "", static_cast<double>(v.link.bytes));
    e.family("qosc_link_drops_total", "counter", "Packets the root qdisc dropped.");
    e.value("qosc_link_drops_total", "", static_cast<double>(v.link.drops));
    e.family("qosc_link_backlog_bytes", "gauge", "Bytes queued in the root qdisc now.");
    e.value("qosc_link_backlog_bytes", "", static_cast<double>(v.link.backlog_bytes));
  }
  if (v.pifo_inversions) {
    e.family("qosc_pifo_pushdowns_total", "counter", "SP-PIFO push-down events (a rank below every band's bound).");
    e.value("qosc_pifo_pushdowns_total", "", static_cast<double>(*v.pifo_inversions));
  }
  e.family("qosc_link_bytes_per_second", "gauge", "The policy's link rate (with `link adaptive`, its maximum).");
  e.value("qosc_link_bytes_per_second", "", static_cast<double>(v.link_bps) / 8);
  e.family("qosc_flow_table_entries", "gauge", "Flows in the LRU flow table (only when flows are read).");
  e.value("qosc_flow_table_entries", "", static_cast<double>(v.flow_count));
  return e.take();
}

// ---- addresses ----------------------------------------------------------------------

bool is_loopback_address(const std::string& host) {
  in_addr a4{};
  in6_addr a6{};
  if (inet_pton(AF_INET, host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, host.c_str(), &a6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&a6)) return true;
    if (IN6_IS_ADDR_V4MAPPED(&a6)) return a6.s6_addr[12] == 127;
    return false;
  }
  return host == "localhost";
}

Result<HostPort> parse_host_port(const std::string& s) {
  HostPort hp;
  std::string port;
  if (s.empty()) return Error{"empty metrics address; write 127.0.0.1:9464"};
  if (s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string::npos || close + 1 >= s.size() || s[close + 1] != ':')
      return Error{fmt::format("bad metrics address '{}'; write [::1]:9464", s)};
    hp.host = s.substr(1, close - 1);
    port = s.substr(close + 2);
  } else if (auto colon = s.rfind(':'); colon != std::string::npos) {
    if (s.find(':') != colon)
      return Error{fmt::format("bad metrics address '{}': put IPv6 addresses in brackets, e.g. [::1]:9464", s)};
    hp.host = s.substr(0, colon);
    port = s.substr(colon + 1);
  } else {
    port = s;
  }
  if (hp.host.empty()) hp.host = "127.0.0.1";
  char* end = nullptr;
  errno = 0;
  unsigned long p = std::strtoul(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || errno != 0 || p > 65535)
    return Error{fmt::format("bad port in metrics address '{}'; write e.g. 127.0.0.1:9464", s)};
  hp.port = static_cast<uint16_t>(p);
  return hp;
}

// ---- the server ------------------------------------------------------------------------

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& addr_port, bool allow_remote,
                                                            Producer produce) {
  auto hp = parse_host_port(addr_port);
  if (!hp) return hp.error();
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(hp->host.c_str(), std::to_string(hp->port).c_str(), &hints, &res); rc != 0)
    return Error{fmt::format("cannot resolve metrics address '{}': {}", hp->host, gai_strerror(rc))};
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard(res, freeaddrinfo);
  char host[NI_MAXHOST] = {};
  getnameinfo(res->ai_addr, res->ai_addrlen, host, sizeof host, nullptr, 0, NI_NUMERICHOST);
  if (!allow_remote && !is_loopback_address(host))
    return Error{fmt::format("refusing to serve metrics on {} ({}): not a loopback address; the statistics show "
                             "your traffic, so they stay on this host unless you pass --metrics-allow-remote",
                             addr_port, host)};
  std::unique_ptr<MetricsServer> s(new MetricsServer);
  s->listen_.reset(socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s->listen_) return errno_error(errno, "cannot create the metrics socket");
  int one = 1;
  setsockopt(s->listen_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(s->listen_.get(), res->ai_addr, res->ai_addrlen) != 0)
    return errno_error(errno, fmt::format("cannot listen for metrics on {}", addr_port));
  if (listen(s->listen_.get(), 16) != 0) return errno_error(errno, "listen() on the metrics socket");
  sockaddr_storage ss{};
  socklen_t sl = sizeof ss;
  getsockname(s->listen_.get(), reinterpret_cast<sockaddr*>(&ss), &sl);
  s->port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  s->addr_ = res->ai_family == AF_INET6 ? fmt::format("[{}]:{}", host, s->port_) : fmt::format("{}:{}", host, s->port_);
  int p[2];
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return errno_error(errno, "pipe2");
  s->wake_[0].reset(p[0]);
  s->wake_[1].reset(p[1]);
  s->produce_ = std::move(produce);
  s->thread_ = std::thread([srv = s.get()] { srv->loop(); });
  return s;
}

MetricsServer::~MetricsServer() {
  if (wake_[1]) {
    char c = 1;
    ssize_t n = write(wake_[1].get(), &c, 1);
    (void)n;
  }
  if (thread_.joinable()) thread_.join();
}

void MetricsServer::loop() {
  for (;;) {
    pollfd fds[2] = {{listen_.get(), POLLIN, 0}, {wake_[0].get(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) continue;
    Fd c(accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!c) continue;
    timeval tv{2, 0};
    setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    std::string req;
    char buf[2048];
    while (req.find("\r\n\r\n") == std::string::npos && req.find("\n\n") == std::string::npos && req.size() < 16384) {
      ssize_t n = recv(c.get(), buf, sizeof buf, 0);
      if (n <= 0) break;
      req.append(buf, static_cast<size_t>(n));
    }
    std::string line = req.substr(0, req.find_first_of("\r\n"));
    std::string status = "200 OK", type = "text/plain; version=0.0.4; charset=utf-8", body;
    bool head = line.rfind("HEAD ", 0) == 0;
    if (line.rfind("GET ", 0) != 0 && !head) {
      status = "405 Method Not Allowed";
      type = "text/plain";
      body = "only GET\n";
    } else {
      std::string path = line.substr(line.find(' ') + 1);
      path = path.substr(0, path.find(' '));
      if (path == "/metrics" || path.rfind("/metrics?", 0) == 0) {
        try {
          body = produce_();
        } catch (const std::exception& ex) {
          status = "500 Internal Server Error";
          type = "text/plain";
          body = std::string(ex.what()) + "\n";
        }
      } else if (path == "/") {
        type = "text/html";
        body = "<html><body><a href=\"/metrics\">/metrics</a> (qosrun)</body></html>\n";
      } else {
        status = "404 Not Found";
        type = "text/plain";
        body = "not found; try /metrics\n";
      }
    }
    std::string resp = fmt::format("HTTP/1.0 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                   status, type, body.size());
    if (!head) resp += body;
    size_t off = 0;
    while (off < resp.size()) {
      ssize_t n = send(c.get(), resp.data() + off, resp.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
  }
}

}  // namespace qosrun
