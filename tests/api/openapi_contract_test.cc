// Contract test: the running gateway (embedded pipeline, API keys on) against docs/openapi.yaml.
// Every operation of the spec is exercised (success and error answers); each answer's status must
// be declared for its path and method, and its JSON body must validate against the declared
// schema (a JSON-Schema subset: $ref, type, required, properties, additionalProperties, items,
// enum, oneOf, allOf, minimum/maximum, minItems/maxItems, maxLength). Paths marked x-owner: hooks
// (broadcasts, webhooks) are only checked to be documented.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <regex>
#include <set>

#include "tests/api/api_fixture.h"

namespace faxflow {
namespace {

using nlohmann::json;
using testing::ApiAnswer;
using testing::ApiClient;
using testing::Base64;

json ToJson(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      json j = json::object();
      for (const auto& kv : n) j[kv.first.as<std::string>()] = ToJson(kv.second);
      return j;
    }
    case YAML::NodeType::Sequence: {
      json j = json::array();
      for (const auto& v : n) j.push_back(ToJson(v));
      return j;
    }
    case YAML::NodeType::Scalar: {
      const std::string s = n.Scalar();
      if (n.Tag() == "!") return s;  // quoted: always a string
      if (s == "true") return true;
      if (s == "false") return false;
      if (!s.empty() && std::regex_match(s, std::regex("-?[0-9]+"))) return std::stoll(s);
      return s;
    }
    default:
      return nullptr;
  }
}

class Validator {
 public:
  explicit Validator(const json& spec) : spec_(spec) {}

  // Empty when `v` matches `schema`; otherwise what does not.
  std::string Check(const json& schema, const json& v, const std::string& at) const {
    if (schema.contains("$ref")) {
      const std::string ref = schema["$ref"];
      const json* s = &spec_;
      for (size_t pos = 2; pos < ref.size();) {
        const size_t end = std::min(ref.find('/', pos), ref.size());
        s = &(*s)[ref.substr(pos, end - pos)];
        pos = end + 1;
      }
      return Check(*s, v, at);
    }
    if (schema.contains("allOf")) {
      for (const auto& s : schema["allOf"])
        if (auto e = Check(s, v, at); !e.empty()) return e;
    }
    if (schema.contains("oneOf")) {
      int matches = 0;
      for (const auto& s : schema["oneOf"]) matches += Check(s, v, at).empty() ? 1 : 0;
      if (matches != 1) return at + ": matches " + std::to_string(matches) + " of oneOf";
    }
    if (schema.contains("type")) {
      const std::string t = schema["type"];
      const bool ok = (t == "object" && v.is_object()) || (t == "array" && v.is_array()) ||
                      (t == "string" && v.is_string()) || (t == "integer" && v.is_number_integer()) ||
                      (t == "number" && v.is_number()) || (t == "boolean" && v.is_boolean());
      if (!ok) return at + ": expected " + t + ", got " + v.dump().substr(0, 80);
    }
    if (schema.contains("enum")) {
      bool found = false;
      for (const auto& e : schema["enum"]) found |= e == v;
      if (!found) return at + ": " + v.dump() + " is not in " + schema["enum"].dump();
    }
    if (v.is_number()) {
      if (schema.contains("minimum") && v.get<double>() < schema["minimum"].get<double>())
        return at + ": below minimum";
      if (schema.contains("maximum") && v.get<double>() > schema["maximum"].get<double>())
        return at + ": above maximum";
    }
    if (v.is_string() && schema.contains("maxLength") &&
        v.get<std::string>().size() > schema["maxLength"].get<size_t>())
      return at + ": longer than maxLength";
    if (v.is_object()) {
      if (schema.contains("required"))
        for (const auto& r : schema["required"])
          if (!v.contains(r.get<std::string>()))
            return at + ": missing required '" + r.get<std::string>() + "'";
      const json props = schema.value("properties", json::object());
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (props.contains(it.key())) {
          if (auto e = Check(props[it.key()], *it, at + "." + it.key()); !e.empty()) return e;
        } else if (schema.contains("additionalProperties") && schema["additionalProperties"] == false) {
          return at + ": property '" + it.key() + "' is not in the schema";
        }
      }
    }
    if (v.is_array()) {
      if (schema.contains("minItems") && v.size() < schema["minItems"].get<size_t>())
        return at + ": too few items";
      if (schema.contains("maxItems") && v.size() > schema["maxItems"].get<size_t>())
        return at + ": too many items";
      if (schema.contains("items"))
        for (size_t i = 0; i < v.size(); ++i)
          if (auto e = Check(schema["items"], v[i], at + "[" + std::to_string(i) + "]"); !e.empty()) return e;
    }
    return "";
  }

  const json& Resolve(const json& node) const {
    if (!node.contains("$ref")) return node;
    const std::string ref = node["$ref"];
    const json* s = &spec_;
    for (size_t pos = 2; pos < ref.size();) {
      const size_t end = std::min(ref.find('/', pos), ref.size());
      s = &(*s)[ref.substr(pos, end - pos)];
      pos = end + 1;
    }
    return *s;
  }

 private:
  const json& spec_;
};

class ContractTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    spec_ = new json(ToJson(YAML::LoadFile(testing::SourceDir() + "/docs/openapi.yaml")));
    // Prices on: every fax answer carries "cost", checked against the schema too.
    api_ = new testing::EmbeddedApi(
        std::vector<std::pair<std::string, std::string>>{{"pricing.rates", "*=0.01/0.02"}});
  }
  static void TearDownTestSuite() {
    delete api_;
    delete spec_;
  }

  // The spec path template matching `path` (query string ignored).
  static std::string Template(const std::string& path) {
    const std::string p = path.substr(0, path.find('?'));
    for (auto it = (*spec_)["paths"].begin(); it != (*spec_)["paths"].end(); ++it) {
      const std::string re = std::regex_replace(it.key(), std::regex(R"(\{[^}]+\})"), "[^/]+");
      if (std::regex_match(p, std::regex(std::regex_replace(re, std::regex(R"(\.)"), R"(\.)"))))
        return it.key();
    }
    return "";
  }

  // Checks one answer against the spec and records the operation as exercised.
  void Conforms(const std::string& method, const std::string& path, const ApiAnswer& a) {
    SCOPED_TRACE(method + " " + path + " -> " + std::to_string(a.status) + " " + a.body.substr(0, 300));
    const std::string tpl = Template(path);
    ASSERT_FALSE(tpl.empty()) << "path not in docs/openapi.yaml";
    const json& item = (*spec_)["paths"][tpl];
    ASSERT_TRUE(item.contains(method)) << "method not documented";
    const json& responses = item[method]["responses"];
    const std::string code = std::to_string(a.status);
    ASSERT_TRUE(responses.contains(code)) << "status " << code << " not documented";
    exercised_.insert(method + " " + tpl + (a.status < 300 ? " ok" : " error"));
    Validator v(*spec_);
    const json& response = v.Resolve(responses[code]);
    const std::string type = a.header("Content-Type");
    if (!response.contains("content")) {
      EXPECT_TRUE(a.body.empty()) << "no content documented";
      return;
    }
    const std::string media = type.substr(0, type.find(';'));
    ASSERT_TRUE(response["content"].contains(media)) << "content type " << media << " not documented";
    if (media != "application/json") return;
    const json body = json::parse(a.body, nullptr, false);
    ASSERT_FALSE(body.is_discarded()) << "not JSON";
    const std::string err = v.Check(response["content"][media]["schema"], body, "$");
    EXPECT_TRUE(err.empty()) << err;
  }

  static json* spec_;
  static testing::EmbeddedApi* api_;
  static std::set<std::string> exercised_;
};
json* ContractTest::spec_ = nullptr;
testing::EmbeddedApi* ContractTest::api_ = nullptr;
std::set<std::string> ContractTest::exercised_;

TEST_F(ContractTest, EveryOperationAnswersAsDocumented) {
  auto admin = api_->Admin();
  auto anon = api_->Anonymous();
  auto created = admin.PostJson("/v1/admin/keys", json{{"tenant", "contract"}, {"name", "c"}});
  Conforms("post", "/v1/admin/keys", created);
  ApiClient c(api_->port(), created.json()["key"].get<std::string>());
  Conforms("post", "/v1/admin/keys", admin.PostJson("/v1/admin/keys", json{{"tenant", "Not Valid"}}));
  Conforms("post", "/v1/admin/keys", anon.PostJson("/v1/admin/keys", json{{"tenant", "x"}}));
  Conforms("get", "/v1/admin/keys", admin.Get("/v1/admin/keys?tenant=contract"));
  Conforms("get", "/v1/admin/keys", anon.Get("/v1/admin/keys"));
  auto spare = admin.PostJson("/v1/admin/keys", json{{"tenant", "contract"}});
  Conforms("delete", "/v1/admin/keys/{key_id}",
           admin.Delete("/v1/admin/keys/" + spare.json()["key_id"].get<std::string>()));
  Conforms("delete", "/v1/admin/keys/{key_id}", admin.Delete("/v1/admin/keys/0123456789ab"));

  const json doc = {{"content_base64", Base64(testing::ReadFileOrDie(testing::DataFile("sample.pdf")))},
                    {"filename", "sample.pdf"}};
  const json body = {{"to", {"+15550100000", "+15550100020"}},
                     {"documents", {doc}},
                     {"tags", {"contract"}},
                     {"header_text", "Contract"},
                     {"cover", {{"template", "basic"}, {"fields", {{"subject", "c"}}}}}};
  // The request examples themselves follow the request schema.
  Validator v(*spec_);
  EXPECT_EQ(v.Check((*spec_)["components"]["schemas"]["SubmitRequest"], body, "$"), "");
  auto accepted = c.PostJson("/v1/faxes", body, {{"Idempotency-Key", "contract-1"}});
  Conforms("post", "/v1/faxes", accepted);
  Conforms("post", "/v1/faxes", c.PostJson("/v1/faxes", body, {{"Idempotency-Key", "contract-1"}}));
  json other = body;
  other["tags"] = {"other"};
  Conforms("post", "/v1/faxes", c.PostJson("/v1/faxes", other, {{"Idempotency-Key", "contract-1"}}));  // 422
  Conforms("post", "/v1/faxes", c.PostJson("/v1/faxes", json{{"to", "nope"}, {"documents", {doc}}}));  // 400
  Conforms("post", "/v1/faxes", c.PostRaw("/v1/faxes", "x", "text/plain"));                            // 415
  Conforms("post", "/v1/faxes", anon.PostJson("/v1/faxes", body));                                     // 401
  Conforms("post", "/v1/faxes",
           c.PostForm("/v1/faxes", {{"file", std::string(53 << 20, 'a'), "big.txt", "text/plain"},
                                    {"to", "+15550100000", "", ""}}));  // 413
  Conforms("post", "/v1/faxes",
           c.PostJson("/v1/faxes", json{{"to", "+15550100000"},
                                        {"documents", {{{"content_url", "http://127.0.0.1/x"}}}}}));
  const std::string id = accepted.json()["id"];
  ASSERT_TRUE(testing::Await([&] { return c.Get("/v1/faxes/" + id).json().value("done", false); },
                             std::chrono::seconds(120), std::chrono::milliseconds(200)));
  Conforms("get", "/v1/faxes/{id}", c.Get("/v1/faxes/" + id));
  Conforms("get", "/v1/faxes/{id}", c.Get("/v1/faxes/fax_missing"));
  Conforms("get", "/v1/faxes/{id}", anon.Get("/v1/faxes/" + id));
  Conforms("get", "/v1/faxes", c.Get("/v1/faxes?limit=1&tag=contract&state=delivered,partial,failed"));
  Conforms("get", "/v1/faxes", c.Get("/v1/faxes?limit=zero"));
  Conforms("get", "/v1/faxes/{id}/events", c.Get("/v1/faxes/" + id + "/events"));
  Conforms("get", "/v1/faxes/{id}/events", c.Get("/v1/faxes/fax_missing/events"));
  Conforms("get", "/v1/faxes/{id}/report", c.Get("/v1/faxes/" + id + "/report"));
  Conforms("get", "/v1/faxes/{id}/report", c.Get("/v1/faxes/fax_missing/report"));
  Conforms("get", "/v1/faxes/{id}/pages/{n}", c.Get("/v1/faxes/" + id + "/pages/1"));
  Conforms("get", "/v1/faxes/{id}/pages/{n}", c.Get("/v1/faxes/" + id + "/pages/2?format=tiff"));
  Conforms("get", "/v1/faxes/{id}/pages/{n}", c.Get("/v1/faxes/" + id + "/pages/99"));
  {  // each recipient's pages (no covers here: the fax's pages)
    const auto st = c.Get("/v1/faxes/" + id);
    const std::string rid = st.json()["recipients"][0].value("id", "");
    const std::string rp = "/v1/faxes/{id}/recipients/{recipient_id}/pages/{n}";
    Conforms("get", rp, c.Get("/v1/faxes/" + id + "/recipients/" + rid + "/pages/1"));
    Conforms("get", rp, c.Get("/v1/faxes/" + id + "/recipients/" + rid + "/pages/1?format=tiff"));
    Conforms("get", rp, c.Get("/v1/faxes/" + id + "/recipients/" + rid + "/pages/99"));
    Conforms("get", rp, c.Get("/v1/faxes/" + id + "/recipients/rcp_missing/pages/1"));
  }
  auto later = c.PostJson("/v1/faxes", json{{"to", "+15550100000"},
                                            {"documents", {doc}},
                                            {"send_at", SystemClock::Instance().NowMillis() + 3'600'000}});
  Conforms("post", "/v1/faxes", later);
  Conforms(
      "post", "/v1/faxes/{id}/cancel",
      c.PostRaw("/v1/faxes/" + later.json()["id"].get<std::string>() + "/cancel", "", "application/json"));
  Conforms("post", "/v1/faxes/{id}/cancel", c.PostJson("/v1/faxes/" + id + "/cancel", json{{"bogus", 1}}));
  Conforms("post", "/v1/faxes/{id}/cancel",
           c.PostRaw("/v1/faxes/fax_missing/cancel", "", "application/json"));
  Conforms("get", "/healthz", anon.Get("/healthz"));
  Conforms("get", "/readyz", anon.Get("/readyz"));
  Conforms("get", "/metrics", anon.Get("/metrics"));

  // Every documented operation (except the other components' sections) answered successfully here.
  for (auto p = (*spec_)["paths"].begin(); p != (*spec_)["paths"].end(); ++p) {
    if (p->value("x-owner", "") == "hooks") continue;
    for (const char* m : {"get", "post", "delete", "put", "patch"}) {
      if (p->contains(m)) {
        EXPECT_TRUE(exercised_.count(std::string(m) + " " + p.key() + " ok")) << m << " " << p.key();
      }
    }
  }
}

TEST_F(ContractTest, EveryRouteOfTheGatewayIsDocumented) {
  for (const char* path : {"/v1/faxes",
                           "/v1/faxes/{id}",
                           "/v1/faxes/{id}/cancel",
                           "/v1/faxes/{id}/events",
                           "/v1/faxes/{id}/report",
                           "/v1/faxes/{id}/pages/{n}",
                           "/v1/faxes/{id}/recipients/{recipient_id}/pages/{n}",
                           "/v1/admin/keys",
                           "/v1/admin/keys/{key_id}",
                           "/healthz",
                           "/readyz",
                           "/metrics",
                           "/v1/broadcasts",
                           "/v1/broadcasts/{id}",
                           "/v1/broadcasts/{id}/results.csv",
                           "/v1/webhooks/endpoints",
                           "/v1/webhooks/endpoints/{id}",
                           "/v1/webhooks/endpoints/{id}/rotate",
                           "/v1/webhooks/callback-secret",
                           "/v1/webhooks/callback-secret/rotate",
                           "/v1/webhooks/callbacks/{fax_id}"})
    EXPECT_TRUE((*spec_)["paths"].contains(path)) << path;
  // Schemas referenced anywhere exist.
  const std::string text = spec_->dump();
  std::smatch m;
  std::string rest = text;
  while (
      std::regex_search(rest, m, std::regex(R"(#/components/(schemas|responses|parameters)/([A-Za-z]+))"))) {
    EXPECT_TRUE((*spec_)["components"][m[1].str()].contains(m[2].str())) << m[0];
    rest = m.suffix();
  }
}

}  // namespace
}  // namespace faxflow
