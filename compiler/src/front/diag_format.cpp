// JSON and SARIF 2.1.0 forms of diagnostics: see qosc/diag_format.hpp.
#include "qosc/diag_format.hpp"

#include <nlohmann/json.hpp>

#include <ostream>

#include "qosc/version.hpp"

namespace qosc {

std::optional<DiagnosticsFormat> diagnostics_format_from(std::string_view name) {
  if (name == "text") return DiagnosticsFormat::Text;
  if (name == "json") return DiagnosticsFormat::Json;
  if (name == "sarif") return DiagnosticsFormat::Sarif;
  return std::nullopt;
}

DiagnosticsReport::DiagnosticsReport(DiagnosticsFormat format, std::ostream& text_out, bool color)
    : format_(format), text_out_(text_out), color_(color) {}

void DiagnosticsReport::add(const Diagnostics& diags) {
  if (!structured()) {
    diags.print(text_out_, color_);
    return;
  }
  const std::string file = diags.file() ? diags.file()->name() : "";
  for (const auto& d : diags.all()) items_.push_back({file, d});
}

void DiagnosticsReport::add(const SourceFile& file, const Diagnostic& d) {
  if (!structured()) {
    Diagnostics one(&file);
    one.add(d);
    one.print(text_out_, color_);
    return;
  }
  items_.push_back({file.name(), d});
}

namespace {

using nlohmann::json;

const char* severity_name(Severity s) {
  switch (s) {
    case Severity::Error: return "error";
    case Severity::Warning: return "warning";
    case Severity::Note: return "note";
  }
  return "error";
}

json json_location(const std::string& file, Loc l) {
  json j = {{"file", file}};
  if (l.valid()) {
    j["line"] = l.line;
    j["column"] = l.col;
    j["end_column"] = l.col + std::max<uint32_t>(l.len, 1);
  }
  return j;
}

// SARIF's physicalLocation; columns are 1-based and endColumn exclusive, as ours.
json sarif_location(const std::string& file, Loc l) {
  json phys = {{"artifactLocation", {{"uri", file}}}};
  if (l.valid())
    phys["region"] = {{"startLine", l.line}, {"startColumn", l.col}, {"endColumn", l.col + std::max<uint32_t>(l.len, 1)}};
  return {{"physicalLocation", phys}};
}

std::string full_message(const Diagnostic& d) {
  std::string m = d.message;
  for (const auto& h : d.hints) m += "\nhint: " + h;
  return m;
}

}  // namespace

void DiagnosticsReport::finish(std::ostream& out) const {
  if (format_ == DiagnosticsFormat::Json) {
    json list = json::array();
    for (const auto& [file, d] : items_) {
      json j = json_location(file, d.loc);
      j["severity"] = severity_name(d.severity);
      j["message"] = d.message;
      json notes = json::array();
      for (const auto& n : d.notes) {
        json jn = json_location(file, n.loc);
        jn["message"] = n.message;
        notes.push_back(jn);
      }
      j["notes"] = notes;
      j["hints"] = d.hints;
      list.push_back(j);
    }
    out << json{{"diagnostics", list}}.dump(2) << "\n";
    return;
  }
  if (format_ == DiagnosticsFormat::Sarif) {
    json results = json::array();
    for (const auto& [file, d] : items_) {
      json r = {{"level", severity_name(d.severity)},
                {"message", {{"text", full_message(d)}}},
                {"locations", json::array({sarif_location(file, d.loc)})}};
      if (!d.notes.empty()) {
        json rel = json::array();
        for (size_t i = 0; i < d.notes.size(); ++i) {
          json l = sarif_location(file, d.notes[i].loc);
          l["id"] = i;
          l["message"] = {{"text", d.notes[i].message}};
          rel.push_back(l);
        }
        r["relatedLocations"] = rel;
      }
      results.push_back(r);
    }
    json sarif = {{"$schema", "https://json.schemastore.org/sarif-2.1.0.json"},
                  {"version", "2.1.0"},
                  {"runs", json::array({{{"tool", {{"driver", {{"name", "qosc"}, {"version", kVersion}}}}},
                                         {"columnKind", "unicodeCodePoints"},
                                         {"results", results}}})}};
    out << sarif.dump(2) << "\n";
  }
}

}  // namespace qosc
