#include "producers/gateway/faxes_api.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <httplib.h>
#include <openssl/crypto.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "common/ids.h"
#include "common/log.h"
#include "pages/pages.h"
#include "producers/gateway/api_json.h"
#include "producers/gateway/png.h"
#include "schemas/control.pb.h"
#include "topics/catalogue.h"
#include "topics/proto_message.h"

namespace faxflow {
namespace {

using nlohmann::json;

void SendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(2) + "\n", "application/json");
}

void SendError(httplib::Response& res, int status, const std::string& code, const std::string& message,
               const std::string& field = "") {
  SendJson(res, status, ErrorJson(code, message, field));
}

// A request-parsing error: HTTP status, code, message, field.
struct ParseError {
  int status;
  std::string code;
  std::string message;
  std::string field;
};

// "2026-11-22T08:00:00Z", "2026-11-22T08:00:00.250+02:00", or epoch milliseconds.
std::optional<int64_t> ParseTime(const json& v) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (!v.is_string()) return std::nullopt;
  const std::string s = v.get<std::string>();
  if (!s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
      s.size() < 19)
    return std::stoll(s);
  std::tm tm{};
  const char* rest = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr) return std::nullopt;
  int64_t ms = static_cast<int64_t>(timegm(&tm)) * 1000;
  if (*rest == '.') {
    ++rest;
    int digits = 0, frac = 0;
    while (*rest >= '0' && *rest <= '9') {
      if (digits < 3) frac = frac * 10 + (*rest - '0'), ++digits;
      ++rest;
    }
    while (digits < 3) frac *= 10, ++digits;
    ms += frac;
  }
  if (*rest == 'Z' || *rest == 'z') {
    ++rest;
  } else if (*rest == '+' || *rest == '-') {
    const int sign = *rest == '+' ? 1 : -1;
    int hh = 0, mm = 0;
    if (std::sscanf(rest + 1, "%2d:%2d", &hh, &mm) != 2) return std::nullopt;
    ms -= sign * (hh * 60 + mm) * 60'000LL;
    rest += 6;
  } else {
    return std::nullopt;
  }
  if (*rest != '\0') return std::nullopt;
  return ms;
}

std::optional<ParseError> ParseOption(const std::string& k, const json& v, SubmitRequest& req) {
  auto& o = req.options;
  auto bad = [&](const std::string& msg) { return ParseError{400, "invalid_option", msg, k}; };
  if (k == "resolution") {
    const auto s = v.get<std::string>();
    if (s == "fine")
      o.set_resolution(v1::RESOLUTION_FINE);
    else if (s == "normal" || s == "standard")
      o.set_resolution(v1::RESOLUTION_NORMAL);
    else
      return bad("resolution must be fine or normal");
  } else if (k == "paper") {
    const auto s = v.get<std::string>();
    if (s == "a4")
      o.set_paper(v1::PAPER_A4);
    else if (s == "letter")
      o.set_paper(v1::PAPER_LETTER);
    else
      return bad("paper must be a4 or letter");
  } else if (k == "header_text") {
    o.set_header_text(v.get<std::string>());
  } else if (k == "tsi") {
    o.set_tsi(v.get<std::string>());
  } else if (k == "caller_id") {
    o.set_caller_id(v.get<std::string>());
  } else if (k == "priority") {
    o.set_priority(v.get<int>());
  } else if (k == "tags") {
    if (!v.is_array()) return bad("tags must be an array of strings");
    for (const auto& t : v) o.add_tags(t.get<std::string>());
  } else if (k == "callback_url") {
    o.set_callback_url(v.get<std::string>());
  } else if (k == "send_at" || k == "expires_at") {
    auto t = ParseTime(v);
    if (!t) return bad(k + " must be an RFC 3339 time (2026-11-22T08:00:00Z) or epoch milliseconds");
    if (k == "send_at")
      o.set_send_at_ms(*t);
    else
      o.set_expires_at_ms(*t);
  } else if (k == "retry") {
    if (!v.is_object()) return bad("retry must be an object");
    auto* r = o.mutable_retry();
    for (auto it = v.begin(); it != v.end(); ++it) {
      const int n = it->get<int>();
      if (it.key() == "busy_seconds")
        r->set_busy_seconds(n);
      else if (it.key() == "no_answer_seconds")
        r->set_no_answer_seconds(n);
      else if (it.key() == "protocol_seconds")
        r->set_protocol_seconds(n);
      else if (it.key() == "other_seconds")
        r->set_other_seconds(n);
      else if (it.key() == "max_tries")
        r->set_max_tries(n);
      else if (it.key() == "max_dials")
        r->set_max_dials(n);
      else
        return ParseError{400, "unknown_field", "unknown retry field '" + it.key() + "'",
                          "retry." + it.key()};
    }
  } else if (k == "cover") {
    if (!v.is_object()) return bad("cover must be an object {template, fields}");
    auto* c = o.mutable_cover();
    c->set_template_(v.value("template", "basic"));
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (it.key() == "template") continue;
      if (it.key() != "fields" || !it->is_object())
        return ParseError{400, "unknown_field", "cover takes 'template' and 'fields'", "cover." + it.key()};
      for (auto f = it->begin(); f != it->end(); ++f) (*c->mutable_fields())[f.key()] = f->get<std::string>();
    }
  } else {
    return ParseError{400, "unknown_field", "unknown field '" + k + "'", k};
  }
  return std::nullopt;
}

void AddNumbers(const std::string& text, std::vector<std::string>& to) {
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    std::string n = text.substr(start, end - start);
    while (!n.empty() && (n.front() == ' ')) n.erase(n.begin());
    while (!n.empty() && (n.back() == ' ' || n.back() == '\n' || n.back() == '\r')) n.pop_back();
    if (!n.empty()) to.push_back(n);
    start = end + 1;
  }
}

std::optional<ParseError> ParseDocument(const json& d, size_t i, SubmitRequest& req) {
  const std::string field = "documents[" + std::to_string(i) + "]";
  if (!d.is_object()) return ParseError{400, "invalid_document", "each document is an object", field};
  UploadedDocument doc;
  doc.filename = d.value("filename", "");
  int kinds = 0;
  for (auto it = d.begin(); it != d.end(); ++it) {
    if (it.key() == "filename") continue;
    if (it.key() == "content_base64") {
      ++kinds;
      const std::string b64 = it->get<std::string>();
      std::string out;
      out.reserve(b64.size() * 3 / 4);
      int val = 0, bits = -8;
      for (unsigned char c : b64) {
        int x;
        if (c >= 'A' && c <= 'Z')
          x = c - 'A';
        else if (c >= 'a' && c <= 'z')
          x = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
          x = c - '0' + 52;
        else if (c == '+' || c == '-')
          x = 62;
        else if (c == '/' || c == '_')
          x = 63;
        else if (c == '=' || c == '\n' || c == '\r')
          continue;
        else
          return ParseError{400, "invalid_document", "content_base64 is not base64",
                            field + ".content_base64"};
        val = (val << 6) | x;
        bits += 6;
        if (bits >= 0) {
          out.push_back(static_cast<char>((val >> bits) & 0xff));
          bits -= 8;
        }
      }
      doc.content = std::move(out);
    } else if (it.key() == "blob_id") {
      ++kinds;
      doc.blob_id = it->get<std::string>();
    } else if (it.key() == "content_url") {
      ++kinds;
      doc.url = it->get<std::string>();
    } else {
      return ParseError{400, "unknown_field", "unknown document field '" + it.key() + "'",
                        field + "." + it.key()};
    }
  }
  if (kinds != 1)
    return ParseError{400, "invalid_document",
                      "a document has exactly one of content_base64, blob_id, content_url", field};
  req.documents.push_back(std::move(doc));
  return std::nullopt;
}

std::optional<ParseError> ParseJsonSubmission(const std::string& body, SubmitRequest& req) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return ParseError{400, "invalid_json", "the body must be a JSON object", ""};
  try {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() == "to") {
        if (it->is_array()) {
          for (const auto& n : *it) req.to.push_back(n.get<std::string>());
        } else {
          req.to.push_back(it->get<std::string>());
        }
      } else if (it.key() == "documents") {
        if (!it->is_array())
          return ParseError{400, "invalid_document", "documents must be an array", "documents"};
        for (size_t i = 0; i < it->size(); ++i)
          if (auto e = ParseDocument((*it)[i], i, req)) return e;
      } else if (auto e = ParseOption(it.key(), *it, req)) {
        return e;
      }
    }
  } catch (const json::exception& e) {
    return ParseError{400, "invalid_option", std::string("wrong type: ") + e.what(), ""};
  }
  return std::nullopt;
}

std::optional<ParseError> ParseMultipartSubmission(const httplib::Request& http, SubmitRequest& req) {
  for (const auto& [name, part] : http.files) {
    if (name == "to") {
      AddNumbers(part.content, req.to);
    } else if (name == "options") {
      json j = json::parse(part.content, nullptr, false);
      if (j.is_discarded() || !j.is_object())
        return ParseError{400, "invalid_options", "'options' must be a JSON object", "options"};
      try {
        for (auto it = j.begin(); it != j.end(); ++it) {
          if (it.key() == "to") {
            if (it->is_array()) {
              for (const auto& n : *it) req.to.push_back(n.get<std::string>());
            } else {
              req.to.push_back(it->get<std::string>());
            }
          } else if (auto e = ParseOption(it.key(), *it, req)) {
            return e;
          }
        }
      } catch (const json::exception& e) {
        return ParseError{400, "invalid_option", std::string("options: wrong type: ") + e.what(), "options"};
      }
    } else if (name == "content_url") {
      UploadedDocument d;
      d.url = part.content;
      req.documents.push_back(std::move(d));
    } else if (name == "blob_id") {
      UploadedDocument d;
      d.blob_id = part.content;
      req.documents.push_back(std::move(d));
    } else if (name == "file" || name == "file[]" || !part.filename.empty()) {
      req.documents.push_back({part.filename, part.content});
    } else {
      return ParseError{400, "unknown_field", "unknown form field '" + name + "'", name};
    }
  }
  return std::nullopt;
}

// Same request, same fingerprint: numbers, documents (by content hash, blob id or URL) and every
// option (deterministic Protobuf encoding). Multipart and JSON of the same request agree.
std::string Fingerprint(const SubmitRequest& r) {
  std::string canon = "to:";
  for (const auto& n : r.to) canon += n + "\n";
  canon += "docs:";
  for (const auto& d : r.documents)
    canon += d.filename + "|" + (d.blob_id.empty() && d.url.empty() ? Sha256Hex(d.content) : "") + "|" +
             d.blob_id + "|" + d.url + "\n";
  std::string opts;
  {
    google::protobuf::io::StringOutputStream sos(&opts);
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    r.options.SerializeToCodedStream(&cos);
  }
  canon += "options:" + opts;
  return Sha256Hex(canon);
}

std::string KeyedFaxId(const std::string& tenant, const std::string& key, const std::string& fingerprint) {
  return "fax_" + Sha256Hex(tenant + "\n" + key + "\n" + fingerprint).substr(0, 20);
}

json AcceptedFromStatus(const v1::FaxStatus& s) {
  json j;
  j["id"] = s.fax_id();
  j["state"] = "queued";
  j["recipients"] = json::array();
  for (const auto& r : s.recipients())
    j["recipients"].push_back({{"id", r.recipient_id()}, {"to", r.number()}});
  return j;
}

std::string KindName(const v1::DeliveryEvent& e) {
  switch (e.kind_case()) {
    case v1::DeliveryEvent::kRendered:
      return "rendered";
    case v1::DeliveryEvent::kAttemptStarted:
      return "attempt_started";
    case v1::DeliveryEvent::kPageConfirmed:
      return "page_confirmed";
    case v1::DeliveryEvent::kResult:
      return "result";
    case v1::DeliveryEvent::kConnected:
      return "connected";
    case v1::DeliveryEvent::kRetryScheduled:
      return "retry_scheduled";
    case v1::DeliveryEvent::kReport:
      return "report";
    default:
      return "other";
  }
}

json EventJson(const v1::DeliveryEvent& e) {
  json j{{"type", KindName(e)}, {"at_ms", e.at_ms()}};
  if (!e.event_id().empty()) j["id"] = e.event_id();
  if (!e.recipient_id().empty()) j["recipient_id"] = e.recipient_id();
  switch (e.kind_case()) {
    case v1::DeliveryEvent::kRendered:
      j["pages"] = e.rendered().page_count();
      break;
    case v1::DeliveryEvent::kAttemptStarted:
      j["attempt"] = e.attempt_started().attempt();
      j["first_page"] = e.attempt_started().first_page();
      break;
    case v1::DeliveryEvent::kPageConfirmed:
      j["attempt"] = e.page_confirmed().attempt();
      j["page"] = e.page_confirmed().page();
      break;
    case v1::DeliveryEvent::kResult: {
      const auto& r = e.result();
      j["attempt"] = r.attempt();
      j["state"] = StateName(r.state());
      j["reason"] = ReasonName(r.reason());
      j["terminal"] = r.terminal();
      j["pages_sent"] = r.pages_sent();
      j["pages_total"] = r.pages_total();
      if (!r.completion_name().empty()) j["completion"] = r.completion_name();
      if (!r.remote_csid().empty()) j["remote_csid"] = r.remote_csid();
      if (r.bit_rate() > 0) j["bit_rate"] = r.bit_rate();
      j["ecm"] = r.ecm();
      j["duration_ms"] = r.duration_ms();
      if (!r.detail().empty()) j["detail"] = r.detail();
      break;
    }
    case v1::DeliveryEvent::kConnected:
      j["attempt"] = e.connected().attempt();
      j["remote_csid"] = e.connected().remote_csid();
      j["bit_rate"] = e.connected().bit_rate();
      j["ecm"] = e.connected().ecm();
      break;
    case v1::DeliveryEvent::kRetryScheduled:
      j["attempt"] = e.retry_scheduled().attempt();
      j["next_attempt"] = e.retry_scheduled().next_attempt();
      j["retry_at_ms"] = e.retry_scheduled().retry_at_ms();
      j["reason"] = ReasonName(e.retry_scheduled().reason());
      break;
    case v1::DeliveryEvent::kReport:
      j["state"] = StateName(e.report().state());
      j["reason"] = ReasonName(e.report().reason());
      break;
    default:
      break;
  }
  return j;
}

std::string BearerToken(const httplib::Request& req) {
  const std::string auth = req.get_header_value("Authorization");
  if (auth.rfind("Bearer ", 0) == 0) return auth.substr(7);
  if (auth.rfind("Basic ", 0) == 0) {  // curl -u KEY: (the key as user name, empty password)
    const std::string b64 = auth.substr(6);
    std::string out;
    int val = 0, bits = -8;
    for (unsigned char c : b64) {
      const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      const char* p = std::strchr(alphabet, c);
      if (c == '=' || p == nullptr || c == '\0') break;
      val = (val << 6) | static_cast<int>(p - alphabet);
      bits += 6;
      if (bits >= 0) {
        out.push_back(static_cast<char>((val >> bits) & 0xff));
        bits -= 8;
      }
    }
    return out.substr(0, out.find(':'));
  }
  return req.get_header_value("X-Api-Key");
}

bool ValidCursor(const std::string& c) {
  if (c.size() < 22 || c.size() > 80 || c[20] != '/') return false;
  for (size_t i = 0; i < 20; ++i)
    if (c[i] < '0' || c[i] > '9') return false;
  for (size_t i = 21; i < c.size(); ++i)
    if (!std::isalnum(static_cast<unsigned char>(c[i])) && c[i] != '_') return false;
  return true;
}

const std::string& IdPattern() {
  static const std::string p = R"(/v1/faxes/([A-Za-z0-9_]{1,64}))";
  return p;
}

}  // namespace

ApiMetrics::ApiMetrics(prometheus::Registry& r)
    : auth_failures(prometheus::BuildCounter()
                        .Name("faxflow_gateway_auth_failures_total")
                        .Help("Requests refused 401, by reason (missing, invalid, revoked).")
                        .Register(r)),
      limited(prometheus::BuildCounter()
                  .Name("faxflow_gateway_rate_limited_total")
                  .Help("Requests refused 429 by the per-tenant limits, by limit (rate, concurrency).")
                  .Register(r)),
      idempotency(
          prometheus::BuildCounter()
              .Name("faxflow_gateway_idempotency_total")
              .Help("Keyed submissions by outcome: executed, replayed, mismatch, in_flight, recovered.")
              .Register(r)),
      cancels(prometheus::BuildCounter()
                  .Name("faxflow_gateway_cancel_requests_total")
                  .Help("POST /v1/faxes/{id}/cancel requests accepted.")
                  .Register(r)
                  .Add({})),
      submissions(prometheus::BuildCounter()
                      .Name("faxflow_gateway_submissions_total")
                      .Help("Fax submissions by outcome: accepted or the API error code.")
                      .Register(r)),
      recipients(prometheus::BuildCounter()
                     .Name("faxflow_gateway_recipients_accepted_total")
                     .Help("Recipients accepted (one outbound job each).")
                     .Register(r)
                     .Add({})) {}

FaxesApi::FaxesApi(ApiDeps deps, SubmissionService& submissions, StatusStore& status, BlobStore& blobs,
                   prometheus::Registry& registry)
    : deps_(std::move(deps)),
      submissions_(submissions),
      status_(status),
      blobs_(blobs),
      clock_(deps_.clock != nullptr ? *deps_.clock : SystemClock::Instance()),
      metrics_(registry) {}

void FaxesApi::Register(httplib::Server& srv) {
  using Req = const httplib::Request&;
  using Res = httplib::Response&;
  srv.Post("/v1/faxes", [this](Req q, Res s) { Submit(q, s); });
  srv.Get("/v1/faxes", [this](Req q, Res s) { List(q, s); });
  srv.Get(IdPattern(), [this](Req q, Res s) { Get(q, s); });
  srv.Post(IdPattern() + "/cancel", [this](Req q, Res s) { Cancel(q, s); });
  srv.Get(IdPattern() + "/events", [this](Req q, Res s) { Events(q, s); });
  srv.Get(IdPattern() + "/report", [this](Req q, Res s) { Report(q, s); });
  srv.Get(IdPattern() + R"(/pages/([0-9]{1,5}))", [this](Req q, Res s) { Page(q, s); });
  srv.Get(IdPattern() + R"(/recipients/([A-Za-z0-9_]{1,64})/pages/([0-9]{1,5}))",
          [this](Req q, Res s) { RecipientPage(q, s); });
  srv.Post("/v1/admin/keys", [this](Req q, Res s) { AdminKeys(q, s); });
  srv.Get("/v1/admin/keys", [this](Req q, Res s) { AdminKeys(q, s); });
  srv.Delete(R"(/v1/admin/keys/([0-9a-f]{12}))", [this](Req q, Res s) { AdminKeys(q, s); });
}

std::optional<CallContext> FaxesApi::Admit(const httplib::Request& req, httplib::Response& res) {
  auto ctx = Authenticate(req, res);
  if (!ctx) return std::nullopt;
  // Owner routing: a request served by another node is counted by that node's limits only.
  if (router_ && router_(req, res, ctx->caller.tenant)) return std::nullopt;
  if (deps_.limiter != nullptr && deps_.auth != "none") {  // no tenants to limit without keys
    if (auto refused = deps_.limiter->Admit(ctx->caller.tenant, ctx->permit)) {
      metrics_.limited.Add({{"limit", refused->reason}}).Increment();
      res.set_header("Retry-After", std::to_string(refused->retry_after_seconds));
      SendError(res, 429, refused->reason == "rate" ? "rate_limited" : "too_many_concurrent_requests",
                refused->reason == "rate"
                    ? "the tenant's request rate limit is exceeded; retry after the Retry-After seconds"
                    : "the tenant has too many requests in progress; retry after the Retry-After seconds");
      return std::nullopt;
    }
  }
  return ctx;
}

std::optional<CallContext> FaxesApi::Authenticate(const httplib::Request& req, httplib::Response& res) {
  CallContext ctx;
  if (deps_.auth == "none") {
    ctx.caller = Caller{"default", ""};
    ctx.all_tenants = true;
  } else {
    const std::string key = BearerToken(req);
    if (key.empty() || deps_.keys == nullptr) {
      metrics_.auth_failures.Add({{"reason", "missing"}}).Increment();
      res.set_header("WWW-Authenticate", "Bearer realm=\"faxflow\"");
      SendError(res, 401, "unauthenticated", "an API key is required: Authorization: Bearer ffk_...");
      return std::nullopt;
    }
    auto caller = deps_.keys->Authenticate(key);
    if (!caller.ok()) {
      metrics_.auth_failures
          .Add({{"reason", caller.status().message() == "API key revoked" ? "revoked" : "invalid"}})
          .Increment();
      res.set_header("WWW-Authenticate", "Bearer realm=\"faxflow\", error=\"invalid_token\"");
      SendError(res, 401, "unauthenticated", caller.status().message());
      return std::nullopt;
    }
    ctx.caller = *caller;
  }
  return ctx;
}

std::optional<std::vector<v1::DeliveryEvent>> FaxesApi::FaxEvents(const std::string& fax_id,
                                                                  httplib::Response& res) {
  auto events = status_.Events(fax_id);
  if (!events.ok()) {
    SendError(res, 503, "status_unavailable", events.status().message());
    return std::nullopt;
  }
  return std::move(*events);
}

std::optional<v1::FaxStatus> FaxesApi::OwnFax(const CallContext& ctx, const std::string& id,
                                              httplib::Response& res) {
  auto s = status_.Get(id);
  if (!s.ok()) {
    SendError(res, 503, "status_unavailable", s.status().message());
    return std::nullopt;
  }
  // Another tenant's fax is answered exactly like an id that does not exist.
  if (!s->has_value() || (!ctx.all_tenants && (*s)->tenant() != ctx.caller.tenant)) {
    SendError(res, 404, "not_found", "no fax with id '" + id + "'");
    return std::nullopt;
  }
  return std::move(**s);
}

void FaxesApi::Submit(const httplib::Request& req, httplib::Response& res) {
  auto ctx = Admit(req, res);
  if (!ctx) return;
  SubmitRequest sr;
  sr.source = "rest";
  sr.tenant = ctx->caller.tenant;
  sr.api_key_id = ctx->caller.key_id;
  std::optional<ParseError> err;
  if (req.is_multipart_form_data()) {
    err = ParseMultipartSubmission(req, sr);
  } else if (req.get_header_value("Content-Type").rfind("application/json", 0) == 0) {
    err = ParseJsonSubmission(req.body, sr);
  } else {
    SendError(
        res, 415, "unsupported_media_type",
        "POST /v1/faxes takes application/json ({\"to\", \"documents\", options}) or multipart/form-data "
        "(fields 'file', 'to', 'content_url', 'blob_id', 'options')");
    return;
  }
  if (err) {
    SendError(res, err->status, err->code, err->message, err->field);
    return;
  }

  // Idempotency-Key: the first answer of this key, or a claim to run the request.
  const std::string key = req.get_header_value("Idempotency-Key");
  std::string fingerprint, claim_id;
  if (!key.empty() && deps_.idempotency != nullptr) {
    if (!IdempotencyStore::ValidKey(key)) {
      SendError(res, 400, "invalid_idempotency_key", "Idempotency-Key is 1-255 printable ASCII characters",
                "Idempotency-Key");
      return;
    }
    fingerprint = Fingerprint(sr);
    auto d = deps_.idempotency->Begin(sr.tenant, key, fingerprint);
    if (!d.ok()) {
      SendError(res, 503, "idempotency_unavailable",
                "could not record the Idempotency-Key: " + d.status().message());
      return;
    }
    switch (d->verdict) {
      case IdempotencyStore::Verdict::kReplay:
        metrics_.idempotency.Add({{"outcome", "replayed"}}).Increment();
        res.status = d->answer.http_status;
        if (!d->answer.location.empty()) res.set_header("Location", d->answer.location);
        res.set_header("Idempotent-Replayed", "true");
        res.set_content(d->answer.body, "application/json");
        return;
      case IdempotencyStore::Verdict::kMismatch:
        metrics_.idempotency.Add({{"outcome", "mismatch"}}).Increment();
        SendError(res, 422, "idempotency_key_reused",
                  "this Idempotency-Key was used with a different request; use a new key", "Idempotency-Key");
        return;
      case IdempotencyStore::Verdict::kInFlight:
        metrics_.idempotency.Add({{"outcome", "in_flight"}}).Increment();
        res.set_header("Retry-After", std::to_string(d->retry_after_seconds));
        SendError(res, 409, "idempotency_request_in_flight",
                  "a request with this Idempotency-Key is still being processed; retry later",
                  "Idempotency-Key");
        return;
      case IdempotencyStore::Verdict::kProceed:
        break;
    }
    claim_id = d->claim_id;
    sr.idempotency_key = key;
    sr.fax_id = KeyedFaxId(sr.tenant, key, fingerprint);
  }
  auto finish = [&](int status, const json& body, const std::string& location) {
    metrics_.submissions
        .Add({{"outcome", status == 202 ? std::string("accepted") : body["error"].value("code", "error")}})
        .Increment();
    if (!claim_id.empty()) {
      // Accepted answers are remembered; refusals before anything was written and transient
      // failures are not (the client may fix or retry them with the same key).
      Status s = status == 202 ? deps_.idempotency->Complete(sr.tenant, key, claim_id, fingerprint,
                                                             {status, body.dump(2) + "\n", location})
                               : deps_.idempotency->Release(sr.tenant, key, claim_id);
      if (!s.ok())
        FF_LOG_WARN(Logger("gateway"), "idempotency record for a {} answer: {}", status, s.ToString());
    }
    if (!location.empty()) res.set_header("Location", location);
    SendJson(res, status, body);
  };

  if (!sr.fax_id.empty()) {
    // A previous run of this request (on a node that died before recording the answer) may have
    // created the fax already: answer with it instead of producing it again.
    auto existing = status_.Get(sr.fax_id);
    if (existing.ok() && existing->has_value() && (*existing)->tenant() == sr.tenant &&
        (*existing)->recipients_size() > 0) {
      metrics_.idempotency.Add({{"outcome", "recovered"}}).Increment();
      finish(202, AcceptedFromStatus(**existing), "/v1/faxes/" + sr.fax_id);
      return;
    }
  }
  // content_url documents: fetched through the SSRF guard.
  for (size_t i = 0; i < sr.documents.size(); ++i) {
    auto& d = sr.documents[i];
    if (d.url.empty()) continue;
    const std::string field = "documents[" + std::to_string(i) + "].content_url";
    if (!deps_.fetch_url) {
      finish(400,
             ErrorJson("content_url_disabled", "this gateway does not fetch content_url documents", field),
             "");
      return;
    }
    auto fetched = deps_.fetch_url(d.url);
    if (!fetched.ok()) {
      const bool transient = fetched.status().retryable();
      finish(transient ? 502 : 422,
             ErrorJson(transient ? "content_url_unreachable" : "content_url_refused",
                       fetched.status().message(), field),
             "");
      return;
    }
    d.content = std::move(*fetched);
    const auto slash = d.url.rfind('/');
    if (d.filename.empty()) d.filename = slash == std::string::npos ? d.url : d.url.substr(slash + 1);
  }
  SubmitOutcome out = submissions_.Submit(sr);
  if (!out.ok()) {
    finish(out.http_status, ErrorJson(out.error_code, out.message, out.field), "");
    return;
  }
  if (!claim_id.empty()) metrics_.idempotency.Add({{"outcome", "executed"}}).Increment();
  metrics_.recipients.Increment(static_cast<double>(out.submission.recipients_size()));
  finish(202, AcceptedJson(out.submission), "/v1/faxes/" + out.submission.fax_id());
}

void FaxesApi::List(const httplib::Request& req, httplib::Response& res) {
  auto ctx = Admit(req, res);
  if (!ctx) return;
  FaxQuery q;
  q.tenant = ctx->caller.tenant;
  q.limit = 50;
  if (req.has_param("limit")) {
    try {
      q.limit = static_cast<size_t>(std::clamp(std::stoi(req.get_param_value("limit")), 1, 500));
    } catch (const std::exception&) {
      SendError(res, 400, "invalid_parameter", "limit must be a number between 1 and 500", "limit");
      return;
    }
  }
  for (const char* p : {"since", "until"}) {
    if (!req.has_param(p)) continue;
    auto t = ParseTime(json(req.get_param_value(p)));
    if (!t) {
      SendError(res, 400, "invalid_parameter", std::string(p) + " must be RFC 3339 or epoch milliseconds", p);
      return;
    }
    (std::string(p) == "since" ? q.from_ms : q.to_ms) = *t;
  }
  q.tag = req.get_param_value("tag");
  if (q.tag.size() > 64 || q.tag.find('/') != std::string::npos) {
    SendError(res, 400, "invalid_parameter", "tag is at most 64 characters without '/'", "tag");
    return;
  }
  q.cursor = req.get_param_value("cursor");
  if (!q.cursor.empty() && !ValidCursor(q.cursor)) {
    SendError(res, 400, "invalid_parameter", "cursor is not one this API returned", "cursor");
    return;
  }
  if (req.has_param("state")) {
    static const std::set<std::string> known = {"queued",  "in_progress", "delivered",
                                                "partial", "failed",      "cancelled"};
    std::set<std::string> states;
    std::string v = req.get_param_value("state");
    for (size_t start = 0; start <= v.size();) {
      size_t end = v.find(',', start);
      if (end == std::string::npos) end = v.size();
      const std::string s = v.substr(start, end - start);
      if (!known.count(s)) {
        SendError(
            res, 400, "invalid_parameter",
            "state is a comma-separated list of queued, in_progress, delivered, partial, failed, cancelled",
            "state");
        return;
      }
      states.insert(s);
      start = end + 1;
    }
    q.filter = [states](const v1::FaxStatus& f) { return states.count(AggregateState(f)) > 0; };
  }
  auto page = status_.Query(q);
  if (!page.ok()) {
    SendError(res, 503, "status_unavailable", page.status().message());
    return;
  }
  json j{{"faxes", json::array()}};
  for (const auto& f : page->faxes) j["faxes"].push_back(FaxStatusJson(f));
  if (!page->next_cursor.empty()) j["next_cursor"] = page->next_cursor;
  SendJson(res, 200, j);
}

void FaxesApi::Get(const httplib::Request& req, httplib::Response& res) {
  auto ctx = Admit(req, res);
  if (!ctx) return;
  auto fax = OwnFax(*ctx, req.matches[1], res);
  if (!fax) return;
  json j = FaxStatusJson(*fax);
  if (deps_.prices != nullptr && !deps_.prices->empty() && !AddCost(*fax, j, res)) return;
  SendJson(res, 200, j);
}

bool FaxesApi::AddCost(const v1::FaxStatus& fax, json& j, httplib::Response& res) {
  auto events = FaxEvents(fax.fax_id(), res);
  if (!events) return false;
  std::map<std::string, int64_t> connected_ms;  // recipient id -> sum of call durations
  for (const auto& e : *events)
    if (e.has_result()) connected_ms[e.recipient_id()] += e.result().duration_ms();
  double total = 0;
  bool priced_all = true, final = true;
  for (int i = 0; i < fax.recipients_size() && i < static_cast<int>(j["recipients"].size()); ++i) {
    const auto& r = fax.recipients(i);
    final = final && IsTerminal(r.state());
    auto rate = deps_.prices->Find(fax.tenant(), r.number());
    if (!rate) {
      priced_all = false;
      continue;
    }
    const Cost c = PriceList::Compute(*rate, r.pages_sent(), connected_ms[r.recipient_id()]);
    j["recipients"][static_cast<size_t>(i)]["cost"] = {{"currency", deps_.prices->currency()},
                                                       {"amount", c.amount},
                                                       {"pages", c.pages},
                                                       {"minutes", c.minutes},
                                                       {"per_page", rate->per_page},
                                                       {"per_minute", rate->per_minute},
                                                       {"final", IsTerminal(r.state())}};
    total += c.amount;
  }
  if (priced_all)
    j["cost"] = {{"currency", deps_.prices->currency()},
                 {"amount", std::round(total * 10000.0) / 10000.0},
                 {"final", final}};
  return true;
}

void FaxesApi::Cancel(const httplib::Request& req, httplib::Response& res) {
  auto ctx = Admit(req, res);
  if (!ctx) return;
  auto fax = OwnFax(*ctx, req.matches[1], res);
  if (!fax) return;
  std::set<std::string> wanted;
  if (!req.body.empty()) {
    json j = json::parse(req.body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      SendError(res, 400, "invalid_json", "the body is empty or {\"recipients\": [\"rcp_...\"]}");
      return;
    }
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (it.key() != "recipients" || !it->is_array()) {
        SendError(res, 400, "unknown_field", "the body takes only 'recipients' (an array of recipient ids)",
                  it.key());
        return;
      }
      for (const auto& r : *it) {
        if (!r.is_string()) {
          SendError(res, 400, "invalid_parameter", "recipient ids are strings", "recipients");
          return;
        }
        wanted.insert(r.get<std::string>());
      }
    }
    for (const auto& id : wanted) {
      bool found = false;
      for (const auto& r : fax->recipients()) found |= r.recipient_id() == id;
      if (!found) {
        SendError(res, 404, "not_found", "fax '" + fax->fax_id() + "' has no recipient '" + id + "'",
                  "recipients");
        return;
      }
    }
  }
  if (deps_.producer == nullptr) {
    SendError(res, 503, "control_unavailable", "this gateway cannot send control commands");
    return;
  }
  const int64_t now = clock_.NowMillis();
  v1::ControlCommand cmd;
  cmd.set_command_id(NewId("cmd", now));
  cmd.set_kind(v1::CONTROL_CANCEL);
  cmd.set_fax_id(fax->fax_id());
  cmd.set_tenant(fax->tenant());
  for (const auto& id : wanted) cmd.add_recipient_ids(id);
  cmd.set_at_ms(now);
  cmd.set_requested_by(ctx->caller.key_id.empty() ? "api" : ctx->caller.key_id);
  bus::Message m = bus::ProtoMessage(bus::topic::kControl, fax->fax_id(), cmd);
  auto pos = deps_.producer->Produce(m);
  if (!pos.ok()) {
    SendError(res, 503, "queue_unavailable", "could not send the cancel command: " + pos.status().message());
    return;
  }
  metrics_.cancels.Increment();
  // Recipients not dialled yet end CANCELLED now (the modem workers drop their jobs); a call in
  // progress is hung up by its modem worker, which reports the outcome.
  json out{{"id", fax->fax_id()}, {"command_id", cmd.command_id()}, {"recipients", json::array()}};
  std::vector<bus::Message> events;
  for (const auto& r : fax->recipients()) {
    if (!wanted.empty() && !wanted.count(r.recipient_id())) continue;
    std::string outcome;
    if (IsTerminal(r.state())) {
      outcome = "already_final";
    } else if (r.state() == v1::STATE_QUEUED || r.state() == v1::STATE_RENDERED) {
      outcome = "cancelled";
      v1::DeliveryEvent e;
      e.set_event_id(cmd.command_id() + "." + r.recipient_id());
      e.set_fax_id(fax->fax_id());
      e.set_recipient_id(r.recipient_id());
      e.set_tenant(fax->tenant());
      e.set_at_ms(now);
      auto* result = e.mutable_result();
      result->set_attempt(r.attempts());
      result->set_state(v1::STATE_CANCELLED);
      result->set_pages_sent(r.pages_sent());
      result->set_pages_total(r.pages_total());
      result->set_terminal(true);
      result->set_detail("cancelled through the API before dialling");
      events.push_back(bus::ProtoMessage(bus::topic::kEvents, fax->fax_id(), e));
      Status applied = status_.Apply(e);  // visible to the next GET at once (the status worker re-applies it)
      if (!applied.ok())
        FF_LOG_WARN(Logger("gateway"), "cancel of {} not applied locally: {}", r.recipient_id(),
                    applied.ToString());
    } else {
      outcome = "cancelling";
    }
    out["recipients"].push_back({{"id", r.recipient_id()}, {"to", r.number()}, {"cancel", outcome}});
  }
  if (!events.empty()) {
    Status s = deps_.producer->ProduceBatch(events);
    if (!s.ok()) {
      SendError(res, 503, "queue_unavailable",
                "the cancel command is queued but its events are not: " + s.message());
      return;
    }
  }
  auto now_status = status_.Get(fax->fax_id());
  out["state"] =
      now_status.ok() && now_status->has_value() ? AggregateState(**now_status) : AggregateState(*fax);
  SendJson(res, 202, out);
}

void FaxesApi::Events(const httplib::Request& req, httplib::Response& res) {
  auto ctx = Admit(req, res);
  if (!ctx) return;
  auto fax = OwnFax(*ctx, req.matches[1], res);
  if (!fax) return;
  auto events = FaxEvents(fax->fax_id(), res);
  if (!events) return;
  json j{{"id", fax->fax_id()}, {"events", json::array()}};
  j["events"].push_back({{"type", "queued"}, {"at_ms", fax->submitted_at_ms()}});
  for (const auto& e : *events) j["events"].push_back(EventJson(e));
  SendJson(res, 200, j);
}

void FaxesApi::Report(const httplib::Request& req, httplib::Response& res) {
  auto ctx = Admit(req, res);
  if (!ctx) return;
  auto fax = OwnFax(*ctx, req.matches[1], res);
  if (!fax) return;
  auto events = FaxEvents(fax->fax_id(), res);
  if (!events) return;
  json j = FaxStatusJson(*fax);
  j["report_type"] = "transmission";
  for (auto& rj : j["recipients"]) {
    const std::string rid = rj["id"];
    json attempts = json::array();
    json* current = nullptr;
    for (const auto& e : *events) {
      if (e.recipient_id() != rid) continue;
      if (e.has_attempt_started()) {
        attempts.push_back({{"attempt", e.attempt_started().attempt()},
                            {"started_at_ms", e.at_ms()},
                            {"first_page", e.attempt_started().first_page()},
                            {"pages_confirmed", json::array()}});
        current = &attempts.back();
      } else if (e.has_page_confirmed() && current != nullptr) {
        (*current)["pages_confirmed"].push_back(e.page_confirmed().page());
      } else if (e.has_result() && current != nullptr) {
        const auto& r = e.result();
        (*current)["ended_at_ms"] = e.at_ms();
        (*current)["outcome"] = r.terminal() ? StateName(r.state()) : "retry";
        (*current)["reason"] = ReasonName(r.reason());
        (*current)["duration_ms"] = r.duration_ms();
        (*current)["bit_rate"] = r.bit_rate();
        (*current)["ecm"] = r.ecm();
        (*current)["remote_csid"] = r.remote_csid();
        (*current)["completion"] = r.completion_name();
      } else if (e.has_report()) {
        // The modem worker's own report (JSON and PDF in the blob store).
        rj["report_json_blob_id"] = e.report().json_blob_id();
        rj["report_pdf_blob_id"] = e.report().pdf_blob_id();
      }
    }
    rj["attempt_log"] = attempts;
  }
  SendJson(res, 200, j);
}

void FaxesApi::Page(const httplib::Request& req, httplib::Response& res) {
  auto ctx = Admit(req, res);
  if (!ctx) return;
  auto fax = OwnFax(*ctx, req.matches[1], res);
  if (!fax) return;
  const int n = std::stoi(req.matches[2]);
  // A fax with broadcast covers: these are the pages every recipient shares (the covers are the
  // recipients' own pages, GET /v1/faxes/{id}/recipients/{rid}/pages/{n}); the header says so.
  const bool covers = CoverPages(*fax) > 0;
  if (n < 1 || n > fax->page_blob_ids_size()) {
    std::string message =
        "fax '" + fax->fax_id() + "' has " + std::to_string(fax->page_blob_ids_size()) + " rendered pages";
    if (covers)
      message += " shared by its recipients (each recipient's own cover page: /v1/faxes/" + fax->fax_id() +
                 "/recipients/{recipient_id}/pages/1)";
    SendError(res, 404, "not_found", message, "n");
    return;
  }
  if (covers) res.set_header("X-Faxflow-Preview-Scope", "shared");
  SendPage(req, res, fax->page_blob_ids(n - 1));
}

void FaxesApi::RecipientPage(const httplib::Request& req, httplib::Response& res) {
  auto ctx = Admit(req, res);
  if (!ctx) return;
  auto fax = OwnFax(*ctx, req.matches[1], res);
  if (!fax) return;
  const std::string rid = req.matches[2];
  const int n = std::stoi(req.matches[3]);
  const v1::RecipientStatus* recipient = nullptr;
  for (const auto& r : fax->recipients())
    if (r.recipient_id() == rid) recipient = &r;
  if (recipient == nullptr) {
    SendError(res, 404, "not_found", "fax '" + fax->fax_id() + "' has no recipient '" + rid + "'",
              "recipient_id");
    return;
  }
  const std::vector<std::string> ids = RecipientPageIds(*fax, *recipient);
  if (n < 1 || n > static_cast<int>(ids.size())) {
    std::string message = "recipient '" + rid + "' of fax '" + fax->fax_id() + "' has " +
                          std::to_string(ids.size()) + " rendered pages";
    if (ids.empty() && fax->page_blob_ids_size() > 0)  // a fax with covers: this one's cover failed
      message += " (its cover page could not be rendered" +
                 (recipient->detail().empty() ? std::string() : ": " + recipient->detail()) + ")";
    SendError(res, 404, "not_found", message, "n");
    return;
  }
  if (CoverPages(*fax) > 0)  // which part of the recipient's fax this page is
    res.set_header("X-Faxflow-Preview-Scope",
                   n <= static_cast<int>(ids.size()) - fax->page_blob_ids_size() ? "cover" : "shared");
  SendPage(req, res, ids[static_cast<size_t>(n - 1)]);
}

void FaxesApi::SendPage(const httplib::Request& req, httplib::Response& res, const std::string& blob_id) {
  auto page = blobs_.Get(blob_id);
  if (!page.ok()) {
    SendError(res, page.status().code() == Code::kNotFound ? 410 : 503, "page_unavailable",
              page.status().message());
    return;
  }
  const bool tiff = req.get_param_value("format") == "tiff" ||
                    (req.get_header_value("Accept").find("image/tiff") != std::string::npos &&
                     req.get_header_value("Accept").find("image/png") == std::string::npos);
  if (tiff) {
    res.set_content(*page, "image/tiff");
    return;
  }
  auto bitmaps = pages::DecodePages(*page);
  if (!bitmaps.ok() || bitmaps->empty()) {
    SendError(res, 500, "page_undecodable", bitmaps.ok() ? "empty page" : bitmaps.status().message());
    return;
  }
  res.set_content(EncodePng(bitmaps->front()), "image/png");
}

bool FaxesApi::AdminAllowed(const httplib::Request& req, httplib::Response& res) {
  if (deps_.admin_token.empty() || deps_.keys == nullptr) {
    SendError(res, 404, "not_found", "the admin API is off (set gateway.admin_token)");
    return false;
  }
  const std::string token = req.get_header_value("Authorization");
  const std::string want = "Bearer " + deps_.admin_token;
  if (token.size() != want.size() || CRYPTO_memcmp(token.data(), want.data(), want.size()) != 0) {
    metrics_.auth_failures.Add({{"reason", "admin"}}).Increment();
    SendError(res, 401, "unauthenticated", "the admin API takes Authorization: Bearer <gateway.admin_token>");
    return false;
  }
  return true;
}

void FaxesApi::AdminKeys(const httplib::Request& req, httplib::Response& res) {
  if (!AdminAllowed(req, res)) return;
  auto record_json = [](const ApiKeyRecord& r) {
    json j{{"key_id", r.key_id},
           {"tenant", r.tenant},
           {"name", r.name},
           {"created_at_ms", r.created_at_ms},
           {"revoked", r.revoked_at_ms != 0}};
    if (r.revoked_at_ms != 0) j["revoked_at_ms"] = r.revoked_at_ms;
    return j;
  };
  if (req.method == "GET") {
    json j{{"keys", json::array()}};
    for (const auto& r : deps_.keys->List(req.get_param_value("tenant"))) j["keys"].push_back(record_json(r));
    SendJson(res, 200, j);
  } else if (req.method == "DELETE") {
    Status s = deps_.keys->Revoke(req.matches[1]);
    if (!s.ok()) {
      SendError(res, s.code() == Code::kNotFound ? 404 : 503,
                s.code() == Code::kNotFound ? "not_found" : "keys_unavailable", s.message());
      return;
    }
    res.status = 204;
  } else {
    json j = json::parse(req.body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("tenant") || !j["tenant"].is_string()) {
      SendError(res, 400, "invalid_json", "the body is {\"tenant\": \"acme\", \"name\": \"...\"}");
      return;
    }
    auto created = deps_.keys->Create(j["tenant"].get<std::string>(), j.value("name", ""));
    if (!created.ok()) {
      const bool bad = created.status().code() == Code::kInvalidArgument;
      SendError(res, bad ? 400 : 503, bad ? "invalid_parameter" : "keys_unavailable",
                created.status().message(), bad ? "tenant" : "");
      return;
    }
    json out = record_json(created->first);
    out["key"] = created->second;
    SendJson(res, 201, out);
  }
}

}  // namespace faxflow
