// qosc_common: units, load-time tables, ELF sections through libelf, the manifest, SHA-256 and the object digest.
#include <gtest/gtest.h>

#include <bpf/libbpf.h>
#include <elf.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "qos_abi.h"
#include "qosc/elf_sections.hpp"
#include "qosc/load_tables.hpp"
#include "qosc/manifest.hpp"
#include "qosc/object_digest.hpp"
#include "qosc/sha256.hpp"
#include "qosc/units.hpp"

namespace {

std::vector<unsigned char> fixture(const std::string& name) {
  std::ifstream in(std::string(QOSC_FIXTURE_DIR) + "/" + name, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<unsigned char> bytes(std::string_view s) { return {s.begin(), s.end()}; }

// The least a manifest holds: a policy, a scheduler, one class ("bulk").
qosc::Manifest one_class_manifest() {
  qosc::Manifest m;
  m.policy = "p";
  m.scheduler = "strict_priority";
  m.classes.resize(1);
  m.classes[0].name = "bulk";
  return m;
}

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
  EXPECT_EQ(err, "no .qosc.manifest section");
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

// "flow_sample": absent when the flow table counts every packet (and in older
// manifests), so they read as 1; 0 is refused.
TEST(Manifest, FlowSampleIsOptionalAndChecked) {
  qosc::Manifest m = one_class_manifest();
  nlohmann::json plain = qosc::to_json(m);
  EXPECT_FALSE(plain.contains("flow_sample"));
  EXPECT_EQ(qosc::manifest_from_json(plain).flow_sample, 1u);
  m.flow_sample = 16;
  nlohmann::json j = qosc::to_json(m);
  EXPECT_EQ(j["flow_sample"], 16);
  EXPECT_EQ(qosc::manifest_from_json(j).flow_sample, 16u);
  j["flow_sample"] = 0;
  EXPECT_THROW(qosc::manifest_from_json(j), std::runtime_error);
}

// "link_adaptive", "download_bps", "download_adaptive": absent in older
// manifests (fixed link, IFB at the link's rate); present, a range qosc could
// have written for its nominal rate, or the manifest is refused.
TEST(Manifest, AdaptiveRatesAreOptionalAndChecked) {
  qosc::Manifest m = one_class_manifest();
  m.link_bps = 100'000'000;
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

TEST(Manifest, FormatBeforeTheDigestStillReads) {
  // State records of older qosruns hold format-1 manifests: detach must read
  // them. (The loader refuses format-1 objects: see tests/loader.)
  nlohmann::json j = qosc::to_json(one_class_manifest());
  EXPECT_EQ(j["format"], qosc::kManifestFormat);
  j["format"] = 1;
  EXPECT_EQ(qosc::manifest_from_json(j).format, 1u);
  for (int unknown : {0, int(qosc::kManifestFormat) + 1}) {
    j["format"] = unknown;
    EXPECT_THROW(qosc::manifest_from_json(j), std::runtime_error) << unknown;
  }
}

// ---- SHA-256 and the object digest

TEST(Sha256, KnownVectorsWholeAndInPieces) {
  EXPECT_EQ(qosc::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(qosc::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(qosc::sha256_hex(two_blocks), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million(1'000'000, 'a');
  const std::string million_digest = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  EXPECT_EQ(qosc::sha256_hex(million), million_digest);
  // Fed in pieces of every size around a block, the digest is the same.
  for (size_t piece : {1u, 55u, 56u, 63u, 64u, 65u, 1000u}) {
    qosc::Sha256 h;
    for (size_t at = 0; at < million.size(); at += piece)
      h.update(std::string_view(million).substr(at, piece));
    EXPECT_EQ(h.hex_digest(), million_digest) << "pieces of " << piece;
  }
}

namespace {

using qosc::DigestVerdict;

const char* to_text(DigestVerdict v) {
  switch (v) {
    case DigestVerdict::Intact: return "intact";
    case DigestVerdict::Missing: return "missing";
    case DigestVerdict::Mismatch: return "mismatch";
    case DigestVerdict::Malformed: return "malformed";
  }
  return "?";
}

}  // namespace

TEST(ObjectDigest, SealedObjectIsIntactAndUnsealedOnesHaveNone) {
  auto mini = fixture("mini.bpf.o");
  ASSERT_GT(mini.size(), 64u) << "fixture missing: build qosrun_loader_fixtures";
  EXPECT_EQ(to_text(qosc::check_object_digest(mini).verdict), std::string("intact"));
  EXPECT_EQ(to_text(qosc::check_object_digest(fixture("mini-unsealed.bpf.o")).verdict), std::string("missing"));
  EXPECT_EQ(to_text(qosc::check_object_digest(fixture("nomanifest.bpf.o")).verdict), std::string("missing"));

  // The digest section is the last one, and libbpf opens the sealed object.
  std::string err;
  auto sections = qosc::object_sections(mini, &err);
  ASSERT_TRUE(sections) << err;
  EXPECT_EQ(sections->back().name, qosc::kDigestSection);
  bpf_object* bo = bpf_object__open_mem(mini.data(), mini.size(), nullptr);
  ASSERT_NE(bo, nullptr);
  bpf_object__close(bo);

  // Sealing is what qosc does once: a second seal is refused, and so is a
  // file that is not an object.
  EXPECT_FALSE(qosc::add_object_digest(mini, &err));
  EXPECT_EQ(err, "the object already has a .qosc.digest section");
  auto text = bytes("policy x { } is not an object, though it is long enough to have an ELF header....");
  EXPECT_FALSE(qosc::add_object_digest(text, &err));
  EXPECT_EQ(err, "not an object to seal: no ELF magic");
  // Sealing the unsealed build of the same source gives the same bytes.
  auto unsealed = fixture("mini-unsealed.bpf.o");
  ASSERT_TRUE(qosc::add_object_digest(unsealed, &err)) << err;
  EXPECT_EQ(unsealed, mini);
}

TEST(ObjectDigest, AFlippedBitAnywhereInAnySectionIsCaught) {
  const auto mini = fixture("mini.bpf.o");
  std::string err;
  auto sections = qosc::object_sections(mini, &err);
  ASSERT_TRUE(sections) << err;
  size_t tried = 0;
  for (const auto& s : *sections) {
    // Every byte of every section's contents, the digest's own included.
    for (uint64_t at = 0; at < s.size; ++at) {
      auto damaged = mini;
      damaged[s.offset + at] ^= 0x10;
      auto check = qosc::check_object_digest(damaged);
      ++tried;
      if (s.name == qosc::kDigestSection && at < 7) {
        EXPECT_EQ(to_text(check.verdict), std::string("malformed")) << "digest prefix byte " << at;
        EXPECT_EQ(check.detail, "its .qosc.digest section holds no SHA-256");
      } else if (check.verdict == DigestVerdict::Missing) {
        // Only the section name table can lose the digest: its name is there.
        EXPECT_EQ(s.type, uint32_t(SHT_STRTAB)) << s.name << " byte " << at;
      } else {
        EXPECT_TRUE(check.verdict == DigestVerdict::Mismatch || check.verdict == DigestVerdict::Malformed)
            << s.name << " byte " << at << ": " << to_text(check.verdict);
      }
    }
  }
  EXPECT_GT(tried, 1000u);
}

TEST(ObjectDigest, DamagedHeadersAreCaughtExceptWhereTheyOnlySayWhereThingsLie) {
  const auto mini = fixture("mini.bpf.o");
  std::string err;
  auto sections = qosc::object_sections(mini, &err);
  ASSERT_TRUE(sections) << err;
  // Every byte of the ELF header (e_shoff and e_shnum are not hashed, but
  // moved or recounted, the section headers are not found as they were).
  for (size_t at = 0; at < 64; ++at) {
    auto damaged = mini;
    damaged[at] ^= 0x01;
    EXPECT_NE(qosc::check_object_digest(damaged).verdict, DigestVerdict::Intact) << "ELF header byte " << at;
  }
  // Every bit of every section header. sh_offset (bytes 24-31) is layout,
  // not hashed: moved to the same bytes (a section with no contents, zeros
  // next to zeros) the object means the same and may pass.
  for (const auto& s : *sections) {
    for (size_t at = 0; at < 64; ++at) {
      for (int bit = 0; bit < 8; ++bit) {
        auto damaged = mini;
        damaged[s.header_offset + at] ^= uint8_t(1u << bit);
        bool same_bytes = false;
        if (at >= 24 && at < 32) {
          const uint64_t moved = s.offset ^ (uint64_t(1) << (8 * (at - 24) + size_t(bit)));
          same_bytes = s.size == 0 || (moved <= mini.size() && s.size <= mini.size() - moved &&
                                       std::equal(mini.begin() + long(s.offset), mini.begin() + long(s.offset + s.size),
                                                  mini.begin() + long(moved)));
        }
        if (!same_bytes) {
          EXPECT_NE(qosc::check_object_digest(damaged).verdict, DigestVerdict::Intact)
              << s.name << " header byte " << at << " bit " << bit;
        }
      }
    }
  }
}

TEST(ObjectDigest, TruncationAtEveryLengthIsCaught) {
  const auto mini = fixture("mini.bpf.o");
  for (size_t n = 0; n < mini.size(); ++n) {
    auto check = qosc::check_object_digest(std::span(mini).first(n));
    ASSERT_EQ(to_text(check.verdict), std::string("malformed")) << n << " of " << mini.size() << " bytes";
    ASSERT_FALSE(check.detail.empty());
  }
  EXPECT_EQ(qosc::check_object_digest(std::span(mini).first(40)).detail,
            "truncated: 40 bytes, shorter than an ELF header (64 bytes)");
}

TEST(ObjectDigest, AppendingAfterTheSealIsAChange) {
  // The digest covers what qosc wrote; whatever is added later is a change.
  auto mini = fixture("mini.bpf.o");
  std::string err;
  ASSERT_TRUE(qosc::append_elf_section(mini, ".qosc.extra", bytes("later"), &err)) << err;
  EXPECT_EQ(to_text(qosc::check_object_digest(mini).verdict), std::string("mismatch"));
}

TEST(Units, FormatDurationIsExact) {
  EXPECT_EQ(qosc::units::format_duration(5000), "5ms");
  EXPECT_EQ(qosc::units::format_duration(1500), "1500us");
  EXPECT_EQ(qosc::units::format_duration(1000000), "1s");
  EXPECT_EQ(qosc::units::format_duration(2500000), "2500ms");
}
