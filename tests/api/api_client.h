// A small REST client for the API tests: JSON and multipart requests with an API key, headers
// and the answer's status, headers and JSON body.
#pragma once

#include <httplib.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace faxflow::testing {

struct ApiAnswer {
  int status = 0;  // 0: no connection
  std::string body;
  httplib::Headers headers;
  // The parsed body (null when it is not JSON). A reference into this answer: keep the answer
  // alive while using it (no `for (x : Get(...).json()[...])`).
  const nlohmann::json& json() const {
    if (!parsed_) {
      auto j = nlohmann::json::parse(body, nullptr, false);
      json_ = j.is_discarded() ? nlohmann::json() : std::move(j);
      parsed_ = true;
    }
    return json_;
  }
  mutable nlohmann::json json_;
  mutable bool parsed_ = false;
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  std::string error_code() const {
    const auto& j = json();
    return j.is_object() && j.contains("error") ? j["error"].value("code", "") : "";
  }
};

class ApiClient {
 public:
  explicit ApiClient(int port, std::string key = "") : port_(port), key_(std::move(key)) {}
  ApiClient WithKey(const std::string& key) const { return ApiClient(port_, key); }

  ApiAnswer Get(const std::string& path) const {
    httplib::Client c("127.0.0.1", port_);
    Setup(c);
    return From(c.Get(path.c_str(), Auth({})));
  }
  ApiAnswer PostJson(const std::string& path, const std::string& body, httplib::Headers extra = {}) const {
    httplib::Client c("127.0.0.1", port_);
    Setup(c);
    return From(c.Post(path.c_str(), Auth(extra), body, "application/json"));
  }
  ApiAnswer PostJson(const std::string& path, const nlohmann::json& body, httplib::Headers extra = {}) const {
    return PostJson(path, body.dump(), std::move(extra));
  }
  ApiAnswer PostRaw(const std::string& path, const std::string& body, const std::string& type) const {
    httplib::Client c("127.0.0.1", port_);
    Setup(c);
    return From(c.Post(path.c_str(), Auth({}), body, type.c_str()));
  }
  ApiAnswer PostForm(const std::string& path, const httplib::MultipartFormDataItems& items,
                     httplib::Headers extra = {}) const {
    httplib::Client c("127.0.0.1", port_);
    Setup(c);
    return From(c.Post(path.c_str(), Auth(extra), items));
  }
  ApiAnswer Delete(const std::string& path) const {
    httplib::Client c("127.0.0.1", port_);
    Setup(c);
    return From(c.Delete(path.c_str(), Auth({})));
  }

 private:
  void Setup(httplib::Client& c) const {
    c.set_read_timeout(std::chrono::seconds(60));
    c.set_write_timeout(std::chrono::seconds(60));
    c.set_connection_timeout(std::chrono::seconds(30));
  }
  httplib::Headers Auth(httplib::Headers h) const {
    if (!key_.empty()) h.emplace("Authorization", "Bearer " + key_);
    return h;
  }
  static ApiAnswer From(const httplib::Result& r) {
    ApiAnswer a;
    if (!r) {
      a.body = "no answer: " + httplib::to_string(r.error());
      return a;
    }
    a.status = r->status;
    a.body = r->body;
    a.headers = r->headers;
    return a;
  }
  int port_;
  std::string key_;
};

}  // namespace faxflow::testing
