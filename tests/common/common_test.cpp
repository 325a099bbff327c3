// qosc_common: units, load-time tables, ELF sections through libelf, the manifest.
#include <gtest/gtest.h>

#include <bpf/libbpf.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "qos_abi.h"
#include "qosc/elf_sections.hpp"
#include "qosc/load_tables.hpp"
#include "qosc/manifest.hpp"
#include "qosc/units.hpp"

namespace {

std::vector<unsigned char> fixture(const std::string& name) {
  std::ifstream in(std::string(QOSC_FIXTURE_DIR) + "/" + name, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<unsigned char> bytes(std::string_view s) { return {s.begin(), s.end()}; }

}  // namespace

TEST(Units, FormatRateIsExactInTheLanguagesUnits) {
  using qosc::units::format_rate;
  EXPECT_EQ(format_rate(0), "0bit");
  EXPECT_EQ(format_rate(999), "999bit");
  EXPECT_EQ(format_rate(1000), "1kbit");
  EXPECT_EQ(format_rate(1'500'000), "1500kbit");
  EXPECT_EQ(format_rate(100'000'000), "100mbit");
  EXPECT_EQ(format_rate(33'333'333), "33333333bit");
  EXPECT_EQ(format_rate(2'000'000'000'000'000), "2000tbit");
}

TEST(Units, FormattedRatesScaleBackExactly) {
  for (uint64_t bps : {1ull, 1000ull, 1'500'000ull, 33'333'333ull, 100'000'000ull, 7'000'000'000'000ull}) {
    auto q = qosc::units::split_quantity(qosc::units::format_rate(bps));
    const auto* unit = qosc::units::find_unit(qosc::units::kRateUnits, q.unit);
    ASSERT_NE(unit, nullptr) << q.unit;
    bool whole = false;
    EXPECT_EQ(qosc::units::scale(q, unit->multiplier, &whole), bps);
    EXPECT_TRUE(whole);
  }
}

TEST(Units, ScaleIsExact) {
  bool whole = true;
  auto q = qosc::units::split_quantity("2.5Mbit");
  EXPECT_EQ(q.digits, "2");
  EXPECT_EQ(q.frac, "5");
  EXPECT_EQ(q.unit, "Mbit");
  const auto* unit = qosc::units::find_unit(qosc::units::kRateUnits, q.unit);
  ASSERT_NE(unit, nullptr);
  EXPECT_EQ(qosc::units::scale(q, unit->multiplier, &whole), 2'500'000u);
  EXPECT_TRUE(whole);
  EXPECT_EQ(qosc::units::scale(qosc::units::split_quantity("1.0005kbit"), 1000, &whole), 1000u);
  EXPECT_FALSE(whole);
  EXPECT_FALSE(qosc::units::scale(qosc::units::split_quantity("18446744073709551616bit"), 1, &whole));
  EXPECT_FALSE(qosc::units::scale(qosc::units::split_quantity("18446744073709552tbit"), 1'000'000'000'000, &whole));
  EXPECT_EQ(qosc::units::find_unit(qosc::units::kSizeUnits, "KB")->multiplier, 1024u);
  EXPECT_EQ(qosc::units::find_unit(qosc::units::kSizeUnits, "kbit"), nullptr);
}

TEST(LoadTables, RoundTrip) {
  std::vector<qosc::LoadTable> in = {{"qos_t_pool", 4, 8, 2, QOS_TABLE_DENSE, std::vector<unsigned char>(16, 7)},
                                     {"qos_t_saddr4", 8, 4, 1, 0, {24, 0, 0, 0, 10, 0, 0, 0, 3, 0, 0, 0}}};
  auto section = qosc::encode_load_tables(in);
  EXPECT_EQ(section.size() % 8, 0u);
  std::string err;
  auto out = qosc::decode_load_tables(section, &err);
  ASSERT_TRUE(out) << err;
  ASSERT_EQ(out->size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ((*out)[i].name, in[i].name);
    EXPECT_EQ((*out)[i].key_size, in[i].key_size);
    EXPECT_EQ((*out)[i].value_size, in[i].value_size);
    EXPECT_EQ((*out)[i].count, in[i].count);
    EXPECT_EQ((*out)[i].dense(), in[i].dense());
    EXPECT_EQ((*out)[i].data, in[i].data);
  }
  EXPECT_NE(qosc::describe_load_tables(*out).find("qos_t_saddr4            1 entries  key  8 B  value    4 B  key/value pairs"),
            std::string::npos)
      << qosc::describe_load_tables(*out);
}

TEST(LoadTables, DamageIsNamed) {
  auto section = qosc::encode_load_tables({{"qos_t_pool", 4, 8, 4, QOS_TABLE_DENSE, std::vector<unsigned char>(32)}});
  std::string err;
  EXPECT_FALSE(qosc::decode_load_tables(std::span(section).first(4), &err));
  EXPECT_EQ(err, "section too short");
  auto bad = section;
  bad[0] = 'X';
  EXPECT_FALSE(qosc::decode_load_tables(bad, &err));
  EXPECT_EQ(err, "bad magic");
  EXPECT_FALSE(qosc::decode_load_tables(std::span(section).first(30), &err));
  EXPECT_EQ(err, "truncated table header");
  EXPECT_FALSE(qosc::decode_load_tables(std::span(section).first(section.size() - 8), &err));
  EXPECT_EQ(err, "table qos_t_pool truncated");
}

TEST(ElfSections, AppendedSectionReadsBackAndTheObjectStillOpens) {
  auto obj = fixture("mini.bpf.o");
  ASSERT_GT(obj.size(), 64u) << "fixture missing: build qosrun_loader_fixtures";
  std::string err;
  auto before = qosc::read_manifest(obj, &err);
  ASSERT_TRUE(before) << err;

  std::vector<unsigned char> payload(1000);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<unsigned char>(i * 7);
  ASSERT_TRUE(qosc::append_elf_section(obj, ".qosc.test", payload, &err)) << err;
  auto back = qosc::read_elf_section(obj, ".qosc.test", &err);
  ASSERT_TRUE(back) << err;
  EXPECT_EQ(*back, payload);

  // Everything else is where it was: the manifest, and libbpf still opens it.
  auto after = qosc::read_manifest(obj, &err);
  ASSERT_TRUE(after) << err;
  EXPECT_EQ(qosc::to_json(*after), qosc::to_json(*before));
  bpf_object* bo = bpf_object__open_mem(obj.data(), obj.size(), nullptr);
  ASSERT_NE(bo, nullptr) << "libbpf cannot open the object after the append";
  EXPECT_NE(bpf_object__find_program_by_name(bo, before->xdp_prog.c_str()), nullptr);
  bpf_object__close(bo);

  // A second section after the first.
  ASSERT_TRUE(qosc::append_elf_section(obj, QOS_TABLES_SECTION, bytes("tables"), &err)) << err;
  EXPECT_EQ(qosc::read_elf_section(obj, QOS_TABLES_SECTION, &err), bytes("tables"));
  EXPECT_EQ(qosc::read_elf_section(obj, ".qosc.test", &err), payload);
}

TEST(ElfSections, AbsentSectionAndNotAnObjectAreToldApart) {
  auto obj = fixture("mini.bpf.o");
  ASSERT_GT(obj.size(), 64u);
  std::string err;
  bool absent = false;
  EXPECT_FALSE(qosc::read_elf_section(obj, ".no.such.section", &err, &absent));
  EXPECT_TRUE(absent);
  EXPECT_EQ(err, "no section '.no.such.section'");
  auto text = bytes("policy x { } is not an object, though it is long enough to have an ELF header....");
  EXPECT_FALSE(qosc::read_elf_section(text, ".qosc.manifest", &err, &absent));
  EXPECT_FALSE(absent);
  EXPECT_NE(err.find("not an ELF object"), std::string::npos) << err;
  EXPECT_FALSE(qosc::append_elf_section(text, ".x", bytes("y"), &err));
  EXPECT_NE(err.find("not an ELF object"), std::string::npos) << err;
}

TEST(Manifest, ObjectWithoutOneSaysSo) {
  auto obj = fixture("nomanifest.bpf.o");
  ASSERT_GT(obj.size(), 64u);
  std::string err;
  EXPECT_FALSE(qosc::read_manifest(obj, &err));
  EXPECT_EQ(err, "object has no .qosc.manifest section: it was not built by qosc (compile the policy with `qosc -o`)");
}

TEST(Manifest, LeafMinorDefaultsToTheAbiNumbering) {
  qosc::ManifestClass c;
  c.id = 3;
  EXPECT_EQ(c.leaf_minor(), QOS_HTB_MINOR_BASE + 3);
  c.htb_minor = 0x42;
  EXPECT_EQ(c.leaf_minor(), 0x42u);
}

// `set_dscp` is optional in the JSON: manifests written before it (no key)
// read as "no rewrite"; present, it round-trips; out of range is refused.
TEST(Manifest, SetDscpIsOptionalAndChecked) {
  qosc::Manifest m;
  m.policy = "p";
  m.scheduler = "strict_priority";
  m.classes.resize(2);
  m.classes[0].name = "voip";
  m.classes[0].set_dscp = 46;
  m.classes[1].id = 1;
  m.classes[1].name = "bulk";
  nlohmann::json j = qosc::to_json(m);
  EXPECT_EQ(j["classes"][0]["set_dscp"], 46);
  EXPECT_FALSE(j["classes"][1].contains("set_dscp"));
  auto back = qosc::manifest_from_json(j);
  ASSERT_EQ(back.classes.size(), 2u);
  EXPECT_EQ(back.classes[0].set_dscp, std::optional<uint8_t>(46));
  EXPECT_FALSE(back.classes[1].set_dscp);
  j["classes"][0].erase("set_dscp");   // an older manifest
  EXPECT_FALSE(qosc::manifest_from_json(j).classes[0].set_dscp);
  j["classes"][0]["set_dscp"] = 64;
  EXPECT_THROW(qosc::manifest_from_json(j), std::runtime_error);
}

// "link_adaptive", "download_bps", "download_adaptive": absent in older
// manifests (fixed link, IFB at the link's rate); present, a range qosc could
// have written for its nominal rate, or the manifest is refused.
TEST(Manifest, AdaptiveRatesAreOptionalAndChecked) {
  qosc::Manifest m;
  m.policy = "p";
  m.scheduler = "strict_priority";
  m.link_bps = 100'000'000;
  m.classes.resize(1);
  m.classes[0].name = "bulk";
  nlohmann::json plain = qosc::to_json(m);
  for (const char* key : {"link_adaptive", "download_bps", "download_adaptive"}) EXPECT_FALSE(plain.contains(key)) << key;
  auto old = qosc::manifest_from_json(plain);
  EXPECT_FALSE(old.link_adaptive);
  EXPECT_FALSE(old.download_adaptive);
  EXPECT_EQ(old.ifb_link_bps(), 100'000'000u);

  m.link_adaptive = qosc::ManifestAdaptive{10'000'000, 100'000'000, 50'000'000, 5000};
  m.download_bps = 200'000'000;
  m.download_adaptive = qosc::ManifestAdaptive{20'000'000, 200'000'000, 200'000'000, 10000};
  nlohmann::json j = qosc::to_json(m);
  EXPECT_EQ(j["download_bps"], 200'000'000u);
  auto back = qosc::manifest_from_json(j);
  EXPECT_EQ(back.link_adaptive, m.link_adaptive);
  EXPECT_EQ(back.download_adaptive, m.download_adaptive);
  EXPECT_EQ(back.ifb_link_bps(), 200'000'000u);

  auto refused = [&](const char* key, const char* field, uint64_t value) {
    nlohmann::json bad = j;
    bad[key][field] = value;
    EXPECT_THROW(qosc::manifest_from_json(bad), std::runtime_error) << key << "." << field << " = " << value;
  };
  refused("link_adaptive", "min_bps", 0);
  refused("link_adaptive", "min_bps", 100'000'000);          // empty range
  refused("link_adaptive", "max_bps", 90'000'000);           // not the link's nominal rate
  refused("link_adaptive", "start_bps", 5'000'000);          // below the range
  refused("download_adaptive", "start_bps", 300'000'000);    // above it
  refused("download_adaptive", "delay_us", 0);
  nlohmann::json orphan = j;
  orphan.erase("download_bps");                               // an adaptive download needs its rate
  EXPECT_THROW(qosc::manifest_from_json(orphan), std::runtime_error);
}

TEST(Units, FormatDurationIsExact) {
  EXPECT_EQ(qosc::units::format_duration(5000), "5ms");
  EXPECT_EQ(qosc::units::format_duration(1500), "1500us");
  EXPECT_EQ(qosc::units::format_duration(1000000), "1s");
  EXPECT_EQ(qosc::units::format_duration(2500000), "2500ms");
}
