// Fetching a document named by URL, safely (SSRF guard). Used by ingestion for
// {"url": "..."} documents; written to be reused by anything that fetches a URL a client gave us
// (webhooks).
//
// The guard, applied to the first URL and again to every redirect hop:
//   - scheme allow-list: http and https only (file://, gopher://, ftp://, ... are refused);
//   - the host is resolved once by us; if ANY address is loopback, private (RFC 1918, ULA),
//     link-local (incl. 169.254.169.254 metadata), CGNAT (100.64/10), unspecified, multicast,
//     broadcast, reserved or documentation space, the URL is refused. IPv4-mapped/compatible,
//     NAT64 and 6to4 IPv6 forms are classified by the IPv4 address they carry. Numeric host
//     spellings (http://2130706433/, http://0177.0.0.1/) resolve to what they mean and are caught;
//   - curl is pinned to the checked addresses (CURLOPT_RESOLVE) and every socket it opens is
//     checked again (CURLOPT_OPENSOCKETFUNCTION) against that set, so DNS rebinding between our
//     check and the connect cannot reach another address;
//   - redirects are followed by us, at most `max_redirects`, each hop re-checked;
//   - size cap (body bytes) and an overall time cap across all hops; proxies from the
//     environment are ignored.
// `allow_private` switches the address rule off (private deployments, tests); schemes, redirect,
// size and time limits still apply.
//
// Errors: retryable (Code::kUnavailable / kTimeout, message "url unreachable: ...") for failures
// that may pass (connect refused, timeout, DNS failure, HTTP 408/425/429/5xx); permanent for
// everything else: "url refused: ..." (kPermissionDenied: scheme or address rule), "url too
// large: ..." (kResourceExhausted), "url returned HTTP 404" (kNotFound / kInvalidArgument),
// "too many redirects".
//
// Threading: Fetch is thread-safe (each call uses its own curl handle); the fetcher is stateless
// after construction.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

struct sockaddr;

namespace faxflow::ingest {

// An IPv4 or IPv6 address (network byte order bytes).
struct IpAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};  // v4 uses the first 4

  static std::optional<IpAddress> Parse(std::string_view text);  // inet_pton forms only
  static std::optional<IpAddress> FromSockaddr(const sockaddr* addr);
  std::string ToString() const;
  bool operator==(const IpAddress&) const = default;
};

// Why the address must not be fetched from ("loopback", "private", "link-local", "cgnat",
// "unspecified", "multicast", "reserved", ...); nullopt when it is a public unicast address.
std::optional<std::string> ForbiddenAddressReason(const IpAddress& address);

struct UrlFetcherOptions {
  int64_t max_bytes = 50LL << 20;
  std::chrono::milliseconds timeout{30'000};       // whole fetch, all hops
  std::chrono::milliseconds connect_timeout{10'000};
  bool allow_private = false;
  int max_redirects = 5;
  std::string user_agent = "faxflow-ingest/0.1";
  // Replaces ForbiddenAddressReason when set (tests: make one loopback address "public").
  std::function<std::optional<std::string>(const IpAddress&)> address_rule;
  // Networks (CIDR, "127.0.0.1/32", "10.0.0.0/8", "fd00::/8") that are allowed even though the
  // address rule forbids them: the allow-list of private deployments (config
  // net.allowed_private_networks). Everything else keeps the address rule.
  std::vector<std::string> allowed_networks;
};

// One CIDR network; Contains() classifies IPv4-mapped IPv6 addresses by their IPv4 part.
struct IpNetwork {
  IpAddress base;
  int prefix = 0;
  static std::optional<IpNetwork> Parse(std::string_view cidr);
  bool Contains(const IpAddress& address) const;
};

// A request sent through the guard (webhooks): any method, headers and body.
struct OutboundRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// The final (non-redirect) answer; any HTTP status is a response, not an error.
struct OutboundResponse {
  int status = 0;
  std::string body;  // capped at max_bytes
  std::string final_url;
  std::string content_type;
  int redirects = 0;
};

struct FetchedDocument {
  std::string content;
  std::string final_url;
  std::string content_type;  // as the server said; informational (documents are sniffed)
  int redirects = 0;
};

// Checks a URL's scheme and returns its lower-case scheme, host (without brackets) and port.
struct UrlParts {
  std::string scheme;
  std::string host;
  int port = 0;
};
Result<UrlParts> ParseFetchableUrl(const std::string& url);

class UrlFetcher {
 public:
  explicit UrlFetcher(UrlFetcherOptions options);
  Result<FetchedDocument> Fetch(const std::string& url) const;
  // Sends `request` through the same guard as Fetch (scheme allow-list, resolve once and pin,
  // address rule on every hop, redirects re-checked, size and time caps). 307/308 keep the
  // method and body, 301/302/303 continue as GET. Errors are guard refusals and transport
  // failures (same codes as Fetch); every HTTP status comes back as a response.
  Result<OutboundResponse> Send(const OutboundRequest& request) const;
  const UrlFetcherOptions& options() const { return options_; }

 private:
  bool InAllowedNetworks(const IpAddress& address) const;
  UrlFetcherOptions options_;
  std::vector<IpNetwork> networks_;
};

}  // namespace faxflow::ingest
