#include "producers/ingest/url_fetcher.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include <curl/curl.h>

namespace faxflow::ingest {
namespace {

struct CurlDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct CurlUrlDeleter {
  void operator()(CURLU* h) const { curl_url_cleanup(h); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
struct AddrinfoDeleter {
  void operator()(addrinfo* a) const { freeaddrinfo(a); }
};
struct CurlStringDeleter {
  void operator()(char* s) const { curl_free(s); }
};
using CurlPtr = std::unique_ptr<CURL, CurlDeleter>;
using CurlUrlPtr = std::unique_ptr<CURLU, CurlUrlDeleter>;
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;
using AddrinfoPtr = std::unique_ptr<addrinfo, AddrinfoDeleter>;
using CurlString = std::unique_ptr<char, CurlStringDeleter>;

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::optional<std::string> V4Reason(const uint8_t* a) {
  const uint8_t b0 = a[0], b1 = a[1], b2 = a[2];
  if (b0 == 0) return "unspecified";                                   // 0.0.0.0/8 ("this network")
  if (b0 == 127) return "loopback";                                    // 127/8
  if (b0 == 10) return "private";                                      // 10/8
  if (b0 == 172 && (b1 & 0xf0) == 16) return "private";                // 172.16/12
  if (b0 == 192 && b1 == 168) return "private";                        // 192.168/16
  if (b0 == 100 && (b1 & 0xc0) == 64) return "cgnat";                  // 100.64/10
  if (b0 == 169 && b1 == 254) return "link-local (cloud metadata)";    // 169.254/16
  if (b0 == 192 && b1 == 0 && b2 == 0) return "reserved";              // 192.0.0/24 (IETF)
  if (b0 == 192 && b1 == 0 && b2 == 2) return "documentation";         // TEST-NET-1
  if (b0 == 198 && b1 == 51 && b2 == 100) return "documentation";      // TEST-NET-2
  if (b0 == 203 && b1 == 0 && b2 == 113) return "documentation";       // TEST-NET-3
  if (b0 == 198 && (b1 & 0xfe) == 18) return "benchmarking";           // 198.18/15
  if (b0 == 192 && b1 == 88 && b2 == 99) return "reserved";            // 6to4 relay anycast
  if ((b0 & 0xf0) == 224) return "multicast";                          // 224/4
  if ((b0 & 0xf0) == 240) return "reserved";                           // 240/4 incl. broadcast
  return std::nullopt;
}

Status Unreachable(Code code, const std::string& what) { return Status::Retryable(code, "url unreachable: " + what); }
Status Refused(const std::string& what) { return Status::Permanent(Code::kPermissionDenied, "url refused: " + what); }

// State shared with curl's callbacks during one hop.
struct HopState {
  const UrlFetcherOptions* options = nullptr;
  std::vector<IpAddress> allowed;  // the addresses we resolved and checked for this hop
  bool check_addresses = true;
  std::string refused;             // set when the socket callback refused an address
  std::string body;
  bool too_large = false;
};

size_t OnWrite(char* data, size_t size, size_t n, void* user) {
  auto* st = static_cast<HopState*>(user);
  const size_t len = size * n;
  if (static_cast<int64_t>(st->body.size() + len) > st->options->max_bytes) {
    st->too_large = true;
    return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
  }
  st->body.append(data, len);
  return len;
}

curl_socket_t OnOpenSocket(void* user, curlsocktype purpose, curl_sockaddr* address) {
  auto* st = static_cast<HopState*>(user);
  if (purpose != CURLSOCKTYPE_IPCXN) return CURL_SOCKET_BAD;
  auto ip = IpAddress::FromSockaddr(&address->addr);
  if (!ip) {
    st->refused = "connection to a non-IP address";
    return CURL_SOCKET_BAD;
  }
  if (st->check_addresses) {
    if (std::find(st->allowed.begin(), st->allowed.end(), *ip) == st->allowed.end()) {
      st->refused = "connection to unchecked address " + ip->ToString();
      return CURL_SOCKET_BAD;
    }
  }
  return socket(address->family, address->socktype, address->protocol);
}

}  // namespace

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  std::string s(text);
  IpAddress ip;
  if (inet_pton(AF_INET, s.c_str(), ip.bytes.data()) == 1) return ip;
  ip.v6 = true;
  if (inet_pton(AF_INET6, s.c_str(), ip.bytes.data()) == 1) return ip;
  return std::nullopt;
}

std::optional<IpAddress> IpAddress::FromSockaddr(const sockaddr* addr) {
  IpAddress ip;
  if (addr->sa_family == AF_INET) {
    sockaddr_in in;
    std::memcpy(&in, addr, sizeof(in));
    std::memcpy(ip.bytes.data(), &in.sin_addr, 4);
    return ip;
  }
  if (addr->sa_family == AF_INET6) {
    sockaddr_in6 in6;
    std::memcpy(&in6, addr, sizeof(in6));
    ip.v6 = true;
    std::memcpy(ip.bytes.data(), &in6.sin6_addr, 16);
    return ip;
  }
  return std::nullopt;
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof(buf));
  return buf;
}

std::optional<std::string> ForbiddenAddressReason(const IpAddress& address) {
  const uint8_t* a = address.bytes.data();
  if (!address.v6) return V4Reason(a);
  auto zero = [&](int from, int to) {
    for (int i = from; i < to; ++i)
      if (a[i] != 0) return false;
    return true;
  };
  auto embedded = [&](const uint8_t* v4, const char* form) -> std::optional<std::string> {
    auto r = V4Reason(v4);
    if (r) return *r + " (" + form + ")";
    return std::nullopt;
  };
  if (zero(0, 16)) return "unspecified";
  if (zero(0, 15) && a[15] == 1) return "loopback";
  if (zero(0, 10) && a[10] == 0xff && a[11] == 0xff) {  // ::ffff:a.b.c.d (IPv4-mapped)
    return embedded(a + 12, "IPv4-mapped");
  }
  if (zero(0, 12)) return embedded(a + 12, "IPv4-compatible").value_or("reserved (IPv4-compatible)");
  if (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b && zero(4, 12))  // 64:ff9b::/96 NAT64
    return embedded(a + 12, "NAT64");
  if (a[0] == 0x20 && a[1] == 0x02) return embedded(a + 2, "6to4");                 // 2002::/16
  if (a[0] == 0xff) return "multicast";                                                // ff00::/8
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) return "link-local";                     // fe80::/10
  if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) return "site-local";                     // fec0::/10
  if ((a[0] & 0xfe) == 0xfc) return "private (unique local)";                         // fc00::/7
  if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8) return "documentation";  // 2001:db8::/32
  if (a[0] == 0x01 && zero(1, 8)) return "discard-only";                              // 100::/64
  return std::nullopt;
}

Result<UrlParts> ParseFetchableUrl(const std::string& url) {
  GlobalInit();
  CurlUrlPtr h(curl_url());
  if (!h) return Status::Retryable(Code::kInternal, "curl_url failed");
  if (curl_url_set(h.get(), CURLUPART_URL, url.c_str(), CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK)
    return Status::Permanent(Code::kInvalidArgument, "url refused: '" + url + "' is not a valid absolute URL");
  UrlParts parts;
  char* raw = nullptr;
  if (curl_url_get(h.get(), CURLUPART_SCHEME, &raw, 0) != CURLUE_OK || raw == nullptr)
    return Status::Permanent(Code::kInvalidArgument, "url refused: '" + url + "' has no scheme");
  parts.scheme = Lower(CurlString(raw).get());
  if (parts.scheme != "http" && parts.scheme != "https")
    return Refused("scheme '" + parts.scheme + "' is not allowed (http and https only)");
  raw = nullptr;
  if (curl_url_get(h.get(), CURLUPART_HOST, &raw, 0) != CURLUE_OK || raw == nullptr)
    return Status::Permanent(Code::kInvalidArgument, "url refused: '" + url + "' has no host");
  parts.host = CurlString(raw).get();
  if (parts.host.size() >= 2 && parts.host.front() == '[' && parts.host.back() == ']') {
    parts.host = parts.host.substr(1, parts.host.size() - 2);
    const auto pct = parts.host.find('%');  // zone id: never a public address
    if (pct != std::string::npos) return Refused("IPv6 zone ids are not allowed");
  }
  raw = nullptr;
  if (curl_url_get(h.get(), CURLUPART_PORT, &raw, CURLU_DEFAULT_PORT) != CURLUE_OK || raw == nullptr)
    return Status::Permanent(Code::kInvalidArgument, "url refused: '" + url + "' has no port");
  parts.port = std::atoi(CurlString(raw).get());
  if (parts.port <= 0 || parts.port > 65535) return Status::Permanent(Code::kInvalidArgument, "url refused: bad port");
  return parts;
}

UrlFetcher::UrlFetcher(UrlFetcherOptions options) : options_(std::move(options)) {
  GlobalInit();
  for (const auto& text : options_.allowed_networks) {
    auto n = IpNetwork::Parse(text);
    if (n) networks_.push_back(*n);  // invalid entries are rejected by UrlFetcherOptionsFromConfig
  }
}

std::optional<IpNetwork> IpNetwork::Parse(std::string_view cidr) {
  std::string text(cidr);
  while (!text.empty() && text.front() == ' ') text.erase(text.begin());
  while (!text.empty() && text.back() == ' ') text.pop_back();
  const auto slash = text.find('/');
  auto base = IpAddress::Parse(text.substr(0, slash));
  if (!base) return std::nullopt;
  IpNetwork n;
  n.base = *base;
  const int max = base->v6 ? 128 : 32;
  n.prefix = max;
  if (slash != std::string::npos) {
    const std::string p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3 || p.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    n.prefix = std::stoi(p);
    if (n.prefix > max) return std::nullopt;
  }
  return n;
}

bool IpNetwork::Contains(const IpAddress& address) const {
  IpAddress a = address;
  const uint8_t* b = a.bytes.data();
  const bool mapped = a.v6 && std::all_of(b, b + 10, [](uint8_t x) { return x == 0; }) && b[10] == 0xff && b[11] == 0xff;
  if (mapped && !base.v6) {  // ::ffff:a.b.c.d against an IPv4 network
    IpAddress v4;
    std::memcpy(v4.bytes.data(), b + 12, 4);
    a = v4;
  }
  if (a.v6 != base.v6) return false;
  int bits = prefix;
  for (int i = 0; bits > 0; ++i, bits -= 8) {
    const uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((a.bytes[static_cast<size_t>(i)] & mask) != (base.bytes[static_cast<size_t>(i)] & mask)) return false;
  }
  return true;
}

Result<FetchedDocument> UrlFetcher::Fetch(const std::string& url) const {
  OutboundRequest request;
  request.url = url;
  FF_ASSIGN_OR_RETURN(OutboundResponse r, Send(request));
  const long http = r.status;
  std::string host = r.final_url;
  if (auto parts = ParseFetchableUrl(r.final_url); parts.ok()) host = parts->host;
  if (http == 408 || http == 425 || http == 429 || http >= 500)
    return Unreachable(Code::kUnavailable, "HTTP " + std::to_string(http) + " from " + host);
  if (http < 200 || http >= 300)
    return Status::Permanent(http == 404 || http == 410 ? Code::kNotFound : Code::kInvalidArgument,
                             "url returned HTTP " + std::to_string(http));
  FetchedDocument out;
  out.content = std::move(r.body);
  out.final_url = std::move(r.final_url);
  out.content_type = std::move(r.content_type);
  out.redirects = r.redirects;
  return out;
}

bool UrlFetcher::InAllowedNetworks(const IpAddress& address) const {
  for (const auto& n : networks_)
    if (n.Contains(address)) return true;
  return false;
}

Result<OutboundResponse> UrlFetcher::Send(const OutboundRequest& request) const {
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  OutboundResponse out;
  std::string current = request.url;
  std::string method = request.method.empty() ? "GET" : request.method;
  bool with_body = method != "GET" && method != "HEAD";
  for (int hop = 0;; ++hop) {
    FF_ASSIGN_OR_RETURN(UrlParts parts, ParseFetchableUrl(current));

    // Resolve once, check every address.
    HopState st;
    st.options = &options_;
    st.check_addresses = true;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const int rc = getaddrinfo(parts.host.c_str(), nullptr, &hints, &res);
    AddrinfoPtr holder(res);
    if (rc != 0) {
      if (rc == EAI_NONAME || rc == EAI_AGAIN || rc == EAI_FAIL || rc == EAI_NODATA)
        return Unreachable(Code::kUnavailable, "cannot resolve host '" + parts.host + "': " + gai_strerror(rc));
      return Status::Permanent(Code::kInvalidArgument, "url refused: host '" + parts.host + "': " + gai_strerror(rc));
    }
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      auto ip = IpAddress::FromSockaddr(ai->ai_addr);
      if (!ip) continue;
      if (!options_.allow_private && !InAllowedNetworks(*ip)) {
        auto reason = options_.address_rule ? options_.address_rule(*ip) : ForbiddenAddressReason(*ip);
        if (reason) return Refused("host '" + parts.host + "' resolves to " + ip->ToString() + " (" + *reason + ")");
      }
      if (std::find(st.allowed.begin(), st.allowed.end(), *ip) == st.allowed.end()) st.allowed.push_back(*ip);
    }
    if (st.allowed.empty()) return Unreachable(Code::kUnavailable, "host '" + parts.host + "' has no address");

    // Pin curl to exactly these addresses.
    std::string pin = parts.host + ":" + std::to_string(parts.port) + ":";
    for (size_t i = 0; i < st.allowed.size(); ++i) {
      if (i) pin += ",";
      pin += st.allowed[i].v6 ? "[" + st.allowed[i].ToString() + "]" : st.allowed[i].ToString();
    }
    SlistPtr resolve(curl_slist_append(nullptr, pin.c_str()));

    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Unreachable(Code::kTimeout, "timed out after " + std::to_string(options_.timeout.count()) + " ms");

    CurlPtr curl(curl_easy_init());
    if (!curl) return Status::Retryable(Code::kInternal, "curl_easy_init failed");
    CURL* c = curl.get();
    curl_easy_setopt(c, CURLOPT_URL, current.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");  // ignore http_proxy & co: we connect where we checked
    curl_easy_setopt(c, CURLOPT_RESOLVE, resolve.get());
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, &OnOpenSocket);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &st);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &OnWrite);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &st);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(options_.max_bytes));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(left.count()));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::min(left, options_.connect_timeout).count()));
    curl_easy_setopt(c, CURLOPT_USERAGENT, options_.user_agent.c_str());
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");  // any encoding curl can decode; cap applies to decoded bytes
    SlistPtr headers;
    for (const auto& [k, v] : request.headers) {
      curl_slist* l = curl_slist_append(headers.get(), (k + ": " + v).c_str());
      if (l == nullptr) return Status::Retryable(Code::kInternal, "curl_slist_append failed");
      (void)headers.release();
      headers.reset(l);
    }
    if (with_body) {  // no "Expect: 100-continue" round trip before the body
      curl_slist* l = curl_slist_append(headers.get(), "Expect:");
      if (l == nullptr) return Status::Retryable(Code::kInternal, "curl_slist_append failed");
      (void)headers.release();
      headers.reset(l);
    }
    if (headers) curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
    if (method == "HEAD") {
      curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (method != "GET") {
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
    }
    if (with_body) {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.data());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    }

    const CURLcode code = curl_easy_perform(c);
    if (!st.refused.empty()) return Refused(st.refused);
    if (st.too_large || code == CURLE_FILESIZE_EXCEEDED)
      return Status::Permanent(Code::kResourceExhausted,
                               "url too large: document is larger than " + std::to_string(options_.max_bytes) + " bytes");
    if (code != CURLE_OK) {
      const std::string what = std::string(curl_easy_strerror(code)) + " (" + parts.host + ":" + std::to_string(parts.port) + ")";
      switch (code) {
        case CURLE_OPERATION_TIMEDOUT: return Unreachable(Code::kTimeout, what);
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_CONNECT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
          return Unreachable(Code::kUnavailable, what);
        default:
          return Status::Permanent(Code::kInvalidArgument, "url fetch failed: " + what);
      }
    }
    long http = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http);
    if (http >= 300 && http < 400) {
      char* location = nullptr;
      curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &location);
      if (location == nullptr) return Status::Permanent(Code::kInvalidArgument, "url returned HTTP " + std::to_string(http) + " without a Location");
      if (hop + 1 > options_.max_redirects)
        return Status::Permanent(Code::kInvalidArgument,
                                 "url refused: too many redirects (more than " + std::to_string(options_.max_redirects) + ")");
      current = location;  // absolute (curl resolves relative locations); re-checked next hop
      out.redirects = hop + 1;
      if (http != 307 && http != 308 && method != "HEAD") {  // as browsers and curl do
        method = "GET";
        with_body = false;
      }
      continue;
    }
    char* ctype = nullptr;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ctype);
    if (ctype) out.content_type = ctype;
    out.status = static_cast<int>(http);
    out.body = std::move(st.body);
    out.final_url = current;
    return out;
  }
}

}  // namespace faxflow::ingest
