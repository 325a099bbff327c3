// Capture reading: classic pcap (both byte orders, us/ns), pcapng, link-type
// conversion and the errors for damaged files. No kernel needed.
#include <gtest/gtest.h>

#include <cstring>

#include "frames.hpp"
#include "qosrun/pcap.hpp"

using namespace qosrun;
using qosrun::test::tcp4;
using qosrun::test::udp4;

namespace {

struct Builder {
  bool swap = false;
  std::vector<uint8_t> b;
  void u32(uint32_t v) {
    if (swap) v = __builtin_bswap32(v);
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + 4);
  }
  void u16(uint16_t v) {
    if (swap) v = __builtin_bswap16(v);
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + 2);
  }
  void raw(const std::vector<uint8_t>& d) { b.insert(b.end(), d.begin(), d.end()); }
  void pad4() { b.resize((b.size() + 3) / 4 * 4, 0); }
};

// A pcapng file: SHB, IDB (Ethernet, optional tsresol), then EPBs and one SPB.
std::vector<uint8_t> pcapng(const std::vector<std::vector<uint8_t>>& frames, bool swap) {
  Builder w{swap, {}};
  w.u32(0x0a0d0d0a);
  w.u32(28);
  w.u32(0x1a2b3c4d);
  w.u16(1);
  w.u16(0);
  w.u32(0xffffffff);
  w.u32(0xffffffff);   // section length -1
  w.u32(28);
  // IDB with if_tsresol = 9 (nanoseconds)
  w.u32(1);
  w.u32(32);
  w.u16(1);
  w.u16(0);
  w.u32(0);
  w.u16(9);
  w.u16(1);
  w.b.push_back(9);
  w.pad4();
  w.u16(0);
  w.u16(0);
  w.u32(32);
  for (size_t i = 0; i < frames.size(); ++i) {
    const auto& f = frames[i];
    const uint32_t padded = static_cast<uint32_t>((f.size() + 3) / 4 * 4);
    if (i + 1 == frames.size()) {   // the last one as a simple packet block
      w.u32(3);
      w.u32(16 + padded);
      w.u32(static_cast<uint32_t>(f.size()));
      w.raw(f);
      w.pad4();
      w.u32(16 + padded);
      continue;
    }
    w.u32(6);
    w.u32(32 + padded);
    w.u32(0);
    uint64_t ts = 1700000000123456789ull + i;
    w.u32(static_cast<uint32_t>(ts >> 32));
    w.u32(static_cast<uint32_t>(ts));
    w.u32(static_cast<uint32_t>(f.size()));
    w.u32(static_cast<uint32_t>(f.size()));
    w.raw(f);
    w.pad4();
    w.u32(32 + padded);
  }
  return w.b;
}

const std::vector<std::vector<uint8_t>> kFrames = {udp4(53), tcp4(443), udp4(3074)};

}  // namespace

TEST(Pcap, ClassicRoundTripInEveryFlavour) {
  for (bool ns : {false, true}) {
    for (bool swapped : {false, true}) {
      auto bytes = pcap_bytes(kFrames, ns, swapped);
      auto c = parse_capture(bytes, "t.pcap");
      ASSERT_TRUE(c.ok()) << c.error().message;
      EXPECT_FALSE(c->pcapng);
      EXPECT_EQ(c->nanosecond, ns);
      EXPECT_EQ(c->swapped, swapped);
      ASSERT_EQ(c->packets.size(), kFrames.size());
      for (size_t i = 0; i < kFrames.size(); ++i) {
        EXPECT_EQ(c->packets[i].frame, kFrames[i]);
        EXPECT_EQ(c->packets[i].orig_len, kFrames[i].size());
      }
      EXPECT_EQ(c->packets[1].ts_ns - c->packets[0].ts_ns, 1000000u);   // 1 ms apart
    }
  }
}

TEST(Pcap, PcapngBothByteOrders) {
  for (bool swap : {false, true}) {
    auto c = parse_capture(pcapng(kFrames, swap), "t.pcapng");
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_TRUE(c->pcapng);
    ASSERT_EQ(c->packets.size(), kFrames.size());
    for (size_t i = 0; i < kFrames.size(); ++i) EXPECT_EQ(c->packets[i].frame, kFrames[i]) << i;
    EXPECT_EQ(c->packets[0].ts_ns, 1700000000123456789ull);   // nanosecond resolution honoured
  }
}

TEST(Pcap, CookedAndRawIpCapturesBecomeEthernet) {
  const auto eth = udp4(53);
  const std::vector<uint8_t> ip(eth.begin() + 14, eth.end());
  // Linux cooked (SLL): 16-byte header with the protocol at offset 14.
  std::vector<uint8_t> sll(16, 0);
  sll[14] = 0x08;
  sll.insert(sll.end(), ip.begin(), ip.end());
  auto bytes = pcap_bytes({sll});
  const uint32_t lt_sll = 113;
  std::memcpy(bytes.data() + 20, &lt_sll, 4);
  auto c = parse_capture(bytes, "any.pcap");
  ASSERT_TRUE(c.ok()) << c.error().message;
  ASSERT_EQ(c->packets.size(), 1u);
  const auto& f = c->packets[0].frame;
  ASSERT_EQ(f.size(), eth.size());
  EXPECT_EQ(f[12], 0x08);
  EXPECT_EQ(f[13], 0x00);
  EXPECT_TRUE(std::equal(ip.begin(), ip.end(), f.begin() + 14));
  // Raw IP (101): the EtherType comes from the version nibble.
  bytes = pcap_bytes({ip});
  const uint32_t lt_raw = 101;
  std::memcpy(bytes.data() + 20, &lt_raw, 4);
  c = parse_capture(bytes, "raw.pcap");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->packets[0].frame.size(), eth.size());
  EXPECT_EQ(c->packets[0].frame[12], 0x08);
}

TEST(Pcap, DamagedFilesGetClearErrors) {
  auto expect_error = [](std::vector<uint8_t> bytes, const std::string& what) {
    auto c = parse_capture(bytes, "bad.pcap");
    ASSERT_FALSE(c.ok()) << "accepted a file with " << what;
    EXPECT_NE(c.error().message.find(what), std::string::npos) << c.error().message;
    EXPECT_EQ(c.error().message.rfind("bad.pcap", 0), 0u) << "errors name the file: " << c.error().message;
  };
  expect_error({}, "too short for a capture file");
  expect_error({'p', 'o', 'l', 'i', 'c', 'y', ' ', 'x'}, "is not a packet capture");
  auto good = pcap_bytes(kFrames);
  expect_error(std::vector<uint8_t>(good.begin(), good.begin() + 20), "file header is cut off");
  expect_error(std::vector<uint8_t>(good.begin(), good.end() - 5), "packet 2 is cut off");
  expect_error(std::vector<uint8_t>(good.begin(), good.begin() + 24 + 10), "header of packet 0 is cut off");
  auto wifi = good;
  const uint32_t lt_80211 = 105;
  std::memcpy(wifi.data() + 20, &lt_80211, 4);
  expect_error(wifi, "link type 105 (802.11)");
  auto huge = good;
  const uint32_t absurd = 0x7fffffff;
  std::memcpy(huge.data() + 24 + 8, &absurd, 4);
  expect_error(huge, "the file is damaged");
  auto ng = pcapng(kFrames, false);
  expect_error(std::vector<uint8_t>(ng.begin(), ng.end() - 8), "truncated or damaged");
  // An empty capture is fine: no packets.
  auto empty = parse_capture(pcap_bytes({}), "empty.pcap");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->packets.empty());
}

TEST(Pcap, MissingFile) {
  auto c = read_capture("no-such-dir/x.pcap");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message.find("cannot open capture no-such-dir/x.pcap"), std::string::npos);
}
