#include "producers/ingest/ingest_record.h"

#include <cctype>

#include <nlohmann/json.hpp>

namespace faxflow::ingest {
namespace {

using nlohmann::json;

Status Invalid(const std::string& message) { return Status::Permanent(Code::kInvalidArgument, message); }

std::string TypeName(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer";
    case json::value_t::number_float: return "number";
    case json::value_t::string: return "string";
    case json::value_t::array: return "array";
    case json::value_t::object: return "object";
    default: return "value";
  }
}

Status WrongType(const std::string& field, const std::string& expected, const json& got) {
  return Invalid(field + ": expected " + expected + ", got " + TypeName(got));
}

Result<std::string> String(const json& j, const std::string& field) {
  if (!j.is_string()) return WrongType(field, "a string", j);
  return j.get<std::string>();
}

Result<std::vector<std::string>> Strings(const json& j, const std::string& field) {
  if (!j.is_array()) return WrongType(field, "an array of strings", j);
  std::vector<std::string> out;
  for (size_t i = 0; i < j.size(); ++i) {
    FF_ASSIGN_OR_RETURN(auto s, String(j[i], field + "[" + std::to_string(i) + "]"));
    out.push_back(std::move(s));
  }
  return out;
}

Status ParseOptions(const json& j, v1::FaxOptions& o) {
  if (!j.is_object()) return WrongType("options", "an object", j);
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const std::string field = "options." + k;
    if (k == "resolution") {
      FF_ASSIGN_OR_RETURN(auto v, String(*it, field));
      if (v == "fine") o.set_resolution(v1::RESOLUTION_FINE);
      else if (v == "normal") o.set_resolution(v1::RESOLUTION_NORMAL);
      else return Invalid(field + ": must be \"fine\" or \"normal\", got \"" + v + "\"");
    } else if (k == "paper") {
      FF_ASSIGN_OR_RETURN(auto v, String(*it, field));
      if (v == "a4") o.set_paper(v1::PAPER_A4);
      else if (v == "letter") o.set_paper(v1::PAPER_LETTER);
      else return Invalid(field + ": must be \"a4\" or \"letter\", got \"" + v + "\"");
    } else if (k == "header_text") {
      FF_ASSIGN_OR_RETURN(auto v, String(*it, field));
      o.set_header_text(v);
    } else if (k == "tsi") {
      FF_ASSIGN_OR_RETURN(auto v, String(*it, field));
      o.set_tsi(v);
    } else if (k == "priority") {
      if (!it->is_number_integer()) return WrongType(field, "an integer", *it);
      const int64_t p = it->get<int64_t>();
      if (p < 0 || p > 9) return Invalid(field + ": must be between 0 and 9, got " + std::to_string(p));
      o.set_priority(static_cast<int32_t>(p));
    } else if (k == "tags") {
      FF_ASSIGN_OR_RETURN(auto tags, Strings(*it, field));
      for (auto& t : tags) o.add_tags(t);
    } else {
      return Invalid(field + ": unknown field");
    }
  }
  return Status::Ok();
}

Result<IngestDocument> ParseDocument(const json& j, const std::string& field) {
  if (!j.is_object()) return WrongType(field, "an object", j);
  IngestDocument d;
  int sources = 0;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const std::string f = field + "." + k;
    if (k == "blob_id") {
      FF_ASSIGN_OR_RETURN(d.blob_id, String(*it, f));
      d.kind = IngestDocument::Kind::kBlob;
      ++sources;
    } else if (k == "url") {
      FF_ASSIGN_OR_RETURN(d.url, String(*it, f));
      d.kind = IngestDocument::Kind::kUrl;
      ++sources;
    } else if (k == "content_base64") {
      FF_ASSIGN_OR_RETURN(auto text, String(*it, f));
      auto decoded = DecodeBase64(text);
      if (!decoded.ok()) return Invalid(f + ": " + decoded.status().message());
      d.content = std::move(*decoded);
      d.kind = IngestDocument::Kind::kContent;
      ++sources;
    } else if (k == "filename") {
      FF_ASSIGN_OR_RETURN(d.filename, String(*it, f));
    } else {
      return Invalid(f + ": unknown field");
    }
  }
  if (sources != 1) return Invalid(field + ": exactly one of blob_id, url, content_base64 is required");
  if (d.kind == IngestDocument::Kind::kBlob && d.blob_id.empty()) return Invalid(field + ".blob_id: empty");
  if (d.kind == IngestDocument::Kind::kUrl && d.url.empty()) return Invalid(field + ".url: empty");
  return d;
}

Result<IngestRequest> DecodeJson(std::string_view value) {
  json j;
  try {
    j = json::parse(value.begin(), value.end());
  } catch (const json::parse_error& e) {
    return Invalid(std::string("not JSON: ") + e.what());
  }
  if (!j.is_object()) return Invalid("not a JSON object: got " + TypeName(j));
  IngestRequest req;
  req.format = "json";
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    if (k == "id") {
      FF_ASSIGN_OR_RETURN(req.client_ref, String(*it, k));
      if (req.client_ref.size() > 256) return Invalid("id: at most 256 characters");
    } else if (k == "tenant") {
      FF_ASSIGN_OR_RETURN(req.tenant, String(*it, k));
      if (req.tenant.empty() || req.tenant.size() > 128) return Invalid("tenant: 1 to 128 characters");
    } else if (k == "to") {
      FF_ASSIGN_OR_RETURN(req.to, Strings(*it, k));
    } else if (k == "documents") {
      if (!it->is_array()) return WrongType(k, "an array of objects", *it);
      for (size_t i = 0; i < it->size(); ++i) {
        FF_ASSIGN_OR_RETURN(auto d, ParseDocument((*it)[i], "documents[" + std::to_string(i) + "]"));
        req.documents.push_back(std::move(d));
      }
    } else if (k == "options") {
      FF_RETURN_IF_ERROR(ParseOptions(*it, req.options));
    } else {
      return Invalid(k + ": unknown field");
    }
  }
  return req;
}

bool HasUnknownFields(const google::protobuf::Message& m) {
  return !m.GetReflection()->GetUnknownFields(m).empty();
}

Result<IngestRequest> FromProto(const v1::Submission& sub) {
  if (HasUnknownFields(sub)) return Invalid("protobuf: unknown field in faxflow.v1.Submission");
  if (HasUnknownFields(sub.options())) return Invalid("protobuf: unknown field in options");
  IngestRequest req;
  req.format = "protobuf";
  if (!sub.tenant().empty()) req.tenant = sub.tenant();
  req.options = sub.options();
  for (int i = 0; i < sub.recipients_size(); ++i) {
    if (HasUnknownFields(sub.recipients(i))) return Invalid("recipients[" + std::to_string(i) + "]: unknown field");
    req.to.push_back(sub.recipients(i).number());
  }
  for (int i = 0; i < sub.documents_size(); ++i) {
    const auto& ref = sub.documents(i);
    const std::string field = "documents[" + std::to_string(i) + "]";
    if (HasUnknownFields(ref)) return Invalid(field + ": unknown field");
    IngestDocument d;
    d.filename = ref.filename();
    if (!ref.blob_id().empty() && !ref.url().empty()) return Invalid(field + ": set blob_id or url, not both");
    if (!ref.blob_id().empty()) {
      d.kind = IngestDocument::Kind::kBlob;
      d.blob_id = ref.blob_id();
    } else if (!ref.url().empty()) {
      d.kind = IngestDocument::Kind::kUrl;
      d.url = ref.url();
    } else {
      return Invalid(field + ": blob_id or url is required");
    }
    req.documents.push_back(std::move(d));
  }
  return req;
}

Result<IngestRequest> DecodeProto(std::string_view value, bool sniffed) {
  v1::Submission sub;
  if (!sub.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
    if (sniffed) {
      const char c = value.empty() ? ' ' : value.front();
      return Invalid(std::string("not JSON (first byte is '") + (std::isprint(static_cast<unsigned char>(c)) ? std::string(1, c) : "\\x??") +
                     "', a JSON record starts with '{') and not a faxflow.v1.Submission Protobuf either");
    }
    return Invalid("protobuf: does not parse as faxflow.v1.Submission");
  }
  if (sniffed && HasUnknownFields(sub))
    return Invalid("not JSON (a JSON record starts with '{') and not a faxflow.v1.Submission Protobuf either "
                   "(unknown fields); send the header faxflow-schema to say which");
  return FromProto(sub);
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

Result<std::string> DecodeBase64(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  out.reserve(text.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t padding = 0;
  size_t symbols = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\r' || c == '\n') continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    if (padding) return Invalid("invalid base64: data after '=' padding");
    const int v = value(c);
    if (v < 0) return Invalid("invalid base64: unexpected character at offset " + std::to_string(i));
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    ++symbols;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (symbols % 4 == 1) return Invalid("invalid base64: truncated input");
  if (padding > 2 || (padding && (symbols + padding) % 4 != 0)) return Invalid("invalid base64: bad padding");
  return out;
}

Result<IngestRequest> DecodeIngestRecord(const bus::Record& record) {
  const std::string_view value = record.value;
  if (const auto* schema = record.header(std::string(bus::header::kSchema))) {
    if (*schema == kProtobufSchema) return DecodeProto(value, false);
    if (*schema == kJsonSchema) return DecodeJson(value);
    return Invalid("unknown faxflow-schema header '" + *schema + "' (expected " + std::string(kJsonSchema) + " or " +
                   std::string(kProtobufSchema) + ")");
  }
  for (const auto& h : record.headers) {
    if (Lower(h.key) != "content-type") continue;
    const std::string ct = Lower(h.value);
    if (ct.find("json") != std::string::npos) return DecodeJson(value);
    if (ct.find("protobuf") != std::string::npos) return DecodeProto(value, false);
    return Invalid("unsupported content-type header '" + h.value + "' (expected application/json or application/x-protobuf)");
  }
  const auto first = value.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return Invalid("empty record");
  if (value[first] == '{') return DecodeJson(value);
  return DecodeProto(value, true);
}

}  // namespace faxflow::ingest
