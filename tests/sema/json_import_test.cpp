// Import of the dissertation's JSON profiles.
#include <gtest/gtest.h>

#include "helpers.hpp"

namespace qosc {
namespace {

using semtest::lower_text;
using semtest::read_file;

std::optional<std::string> convert(const std::string& json, std::string* diags, const std::string& name = "p.json") {
  SourceFile f(name, json);
  Diagnostics d(&f);
  auto r = json_profile_to_qos(f, d);
  *diags = d.str();
  return r;
}

TEST(JsonImport, GamingProfileFromAppendixB) {
  auto l = lower_text(read_file(std::string(QOSC_SOURCE_DIR) + "/examples/json/gaming.json"), "gaming.json");
  ASSERT_TRUE(l.ir) << l.diags;
  const auto& p = *l.ir;
  EXPECT_EQ(p.link_bps, 1'000'000'000u);
  EXPECT_EQ(p.scheduler.kind, ir::SchedKind::StrictPriority);
  ASSERT_EQ(p.classes.size(), 4u);
  EXPECT_EQ(p.classes[p.default_class].name, "bulk") << "highest priority number";
  EXPECT_EQ(p.classes[1].rate_bps, 50'000'000u);
  EXPECT_EQ(p.classes[1].burst_bytes, 100u * 1024);
  EXPECT_EQ(p.classes[1].quantum, 2000u);
  EXPECT_EQ(p.classes[1].weight, 30u);
  ASSERT_EQ(p.rules.size(), 2u);
  EXPECT_EQ(*p.rules[0].sport, (ir::PortSet{{3074, 3075}}));
  EXPECT_FALSE(p.rules[0].dport);
  EXPECT_EQ(*p.rules[1].dport, (ir::PortSet{{3074, 3075}}));
  EXPECT_TRUE(p.rules[1].protos->test(17));
  EXPECT_EQ(p.rules[1].target, 1);
  // control and voip are unreachable in the dissertation's own profile.
  EXPECT_EQ(l.warnings, 2u) << l.diags;
}

// The shipped .qos files mean exactly what the imported profiles mean.
TEST(JsonImport, ProfilesEqualShippedQos) {
  for (const char* name : {"server", "default"}) {
    std::string dir = std::string(QOSC_SOURCE_DIR) + "/examples/";
    auto j = lower_text(read_file(dir + "json/" + name + ".json"), std::string(name) + ".json");
    auto q = lower_text(read_file(dir + name + ".qos"), std::string(name) + ".qos");
    ASSERT_TRUE(j.ir) << j.diags;
    ASSERT_TRUE(q.ir) << q.diags;
    std::string why;
    EXPECT_TRUE(semtest::same_meaning(*j.ir, *q.ir, &why)) << name << ": " << why << "\n" << dump_ir(*j.ir) << dump_ir(*q.ir);
  }
}

// examples/gaming.qos (the contract's example) extends the Appendix B profile:
// its classes carry the same numbers and its game rules cover the profile's.
TEST(JsonImport, GamingQosExtendsProfile) {
  std::string dir = std::string(QOSC_SOURCE_DIR) + "/examples/";
  auto j = lower_text(read_file(dir + "json/gaming.json"), "gaming.json");
  auto q = lower_text(read_file(dir + "gaming.qos"), "gaming.qos");
  ASSERT_TRUE(j.ir && q.ir);
  for (const auto& c : j.ir->classes) {
    const auto* d = q.ir->find_class(c.name);
    ASSERT_NE(d, nullptr) << c.name;
    EXPECT_EQ(d->priority, c.priority) << c.name;
    EXPECT_EQ(d->rate_bps, c.rate_bps) << c.name;
    EXPECT_EQ(d->burst_bytes, c.burst_bytes) << c.name;
  }
  EXPECT_EQ(q.ir->classes[q.ir->default_class].name, j.ir->classes[j.ir->default_class].name);
}

TEST(JsonImport, AnyProtocolWithPortsBecomesTcpAndUdp) {
  std::string diags;
  auto t = convert(R"({"scheduler":"drr","classes":[{"id":3,"name":"x","priority":1},{"id":4,"name":"y","priority":1}],
    "rules":[{"priority":5,"src_ip":"0.0.0.0/0","dst_ip":"10.0.0.0/8","src_port_min":0,"src_port_max":0,
              "dst_port_min":53,"dst_port_max":53,"protocol":"any","class_id":3},
             {"priority":1,"protocol":"any","class_id":4}]})", &diags);
  ASSERT_TRUE(t) << diags;
  EXPECT_NE(t->find("rule ip -> y;"), std::string::npos) << *t;
  auto tcp = t->find("rule ip daddr 10.0.0.0/8 tcp dport 53 -> x;");
  auto udp = t->find("rule ip daddr 10.0.0.0/8 udp dport 53 -> x;");
  EXPECT_NE(tcp, std::string::npos) << *t;
  EXPECT_NE(udp, std::string::npos) << *t;
  EXPECT_LT(t->find("-> y;"), tcp) << "rules sorted by ascending priority";
  EXPECT_NE(t->find("# note: default class 'y'"), std::string::npos) << "tie on priority -> highest id\n" << *t;
  EXPECT_NE(t->find("link 1gbit;"), std::string::npos);
}

TEST(JsonImport, StructuralErrorsNameTheJsonPath) {
  std::string diags;
  auto t = convert(R"({"scheduler":"sp","classes":[{"id":0,"name":"a","priority":0}],
     "rules":[{"priority":1,"protocol":"tcp","class_id":0},{"priority":2,"protocol":"sctp","class_id":0}]})",
                   &diags, "gaming.json");
  EXPECT_FALSE(t);
  EXPECT_NE(diags.find("rules[1].protocol: expected one of tcp, udp, icmp, any"), std::string::npos) << diags;
  EXPECT_FALSE(convert(R"({"scheduler":"sp","classes":[{"id":0,"name":"a"}],"rules":[{"protocol":"tcp","class_id":9}]})", &diags));
  EXPECT_NE(diags.find("rules[0].class_id: no class has id 9"), std::string::npos) << diags;
  EXPECT_FALSE(convert(R"({"scheduler":"sp","classes":[]})", &diags));
  EXPECT_NE(diags.find("classes:"), std::string::npos) << diags;
  EXPECT_FALSE(convert("{\n  \"scheduler\": ,\n}", &diags));
  EXPECT_NE(diags.find("invalid JSON"), std::string::npos) << diags;
  EXPECT_NE(diags.find("2:16"), std::string::npos) << "points at line 2, column 16\n" << diags;
}

TEST(JsonImport, BadValuesAreDiagnosedBySema) {
  auto l = lower_text(R"({"scheduler":"strict_priority","classes":[{"id":0,"name":"a","priority":9}],"rules":[]})", "bad.json");
  EXPECT_FALSE(l.ir);
  EXPECT_NE(l.diags.find("priority must be 0 to 7"), std::string::npos) << l.diags;
}

}  // namespace
}  // namespace qosc
