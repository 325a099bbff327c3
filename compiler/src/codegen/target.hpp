#pragma once
// Targets: the two program kinds in one object. Each knows its section,
// context type, return codes and what it may touch (XDP: data_meta and
// policing; TC: skb->priority for HTB, no policing).
#include <string>

namespace qosc::codegen {

struct Target {
  const char* name;        // program (function) name
  const char* section;     // SEC(...)
  const char* ctx_type;    // context struct
  const char* hook;        // QOS_HOOK_XDP / QOS_HOOK_TC
  const char* pass;        // return code: pass the packet
  const char* drop;        // return code: drop the packet
  bool polices;            // applies class rate/burst policers
  bool sets_priority;      // sets skb->priority for HTB / PIFO bands
  bool writes_meta;        // hands the class to TC via data_meta
};

inline constexpr Target kXdpTarget{"qos_xdp", "xdp", "struct xdp_md", "QOS_HOOK_XDP", "XDP_PASS", "XDP_DROP",
                                   true, false, true};
inline constexpr Target kTcTarget{"qos_tc", "tc", "struct __sk_buff", "QOS_HOOK_TC", "TC_ACT_OK", "TC_ACT_SHOT",
                                  false, true, false};

}  // namespace qosc::codegen
