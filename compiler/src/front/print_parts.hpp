#pragma once
// The pieces of the canonical text of a policy (printer.cpp), shared by
// print_policy and the formatter (format.cpp), so both write a value, a
// match or a rule the same way.
#include <string>
#include <vector>

#include "qosc/ast.hpp"

namespace qosc::printer {

std::string element_text(const ast::Element& e);                  // 10.0.0.0/8, 80-90, ef
std::string elements_text(const std::vector<ast::Element>& els);  // { a, b }
std::string value_text(const ast::Value& v);                      // != { 80, 443 }, @name
std::string expr_text(const ast::Expr* e);                        // fewest parentheses that re-parse the same
std::string attr_text(const ast::ClassAttr& a);                   // rate 10mbit;
std::string rate_text(const ast::Rate& r);                        // 1gbit
std::string duration_text(const ast::Duration& d);                // 5ms
// `link 1gbit;`, `download adaptive 20mbit-200mbit start 100mbit delay 5ms;` (knobs in this order)
std::string link_text(const char* keyword, const ast::LinkRate& l);
std::string match_text(const ast::Match& m);                      // tcp dport 80
std::string scheduler_text(const ast::Scheduler& sc);             // scheduler pifo { rank = ...; }
std::string rule_text(const ast::RuleDecl& r);                    // rule ... -> target;
std::string plan_attr_text(const ast::PlanAttr& a);               // ceil 100mbit; / classes game, bulk;
std::string plan_text(const ast::PlanDecl& p);                    // plan basic { rate 10mbit; }
std::string hosts_text(const ast::HostsDecl& h);                  // hosts daddr nat;

}  // namespace qosc::printer
