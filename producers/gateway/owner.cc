#include "producers/gateway/owner.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "common/log.h"
#include "producers/gateway/gateway.h"
#include "schemas/load.pb.h"
#include "topics/catalogue.h"
#include "topics/claims/assignment.h"

namespace faxflow {
namespace {

constexpr char kForwardedBy[] = "X-Faxflow-Forwarded-By";

}  // namespace

OwnerDirectory::OwnerDirectory(OwnerOptions options, bus::Bus& bus, prometheus::Registry& registry,
                               Clock& clock)
    : options_(std::move(options)),
      bus_(bus),
      clock_(clock),
      table_(clock, options_.member_timeout),
      redirects_(prometheus::BuildCounter()
                     .Name("faxflow_gateway_owner_redirects_total")
                     .Help("Requests answered 307 to the node owning the caller's tenant "
                           "(gateway.owner_mode=redirect).")
                     .Register(registry)
                     .Add({})),
      proxied_(
          prometheus::BuildCounter()
              .Name("faxflow_gateway_owner_proxied_total")
              .Help(
                  "Requests forwarded to the node owning the caller's tenant, by outcome (ok, unreachable).")
              .Register(registry)),
      members_(prometheus::BuildGauge()
                   .Name("faxflow_gateway_owner_members")
                   .Help("Live gateway nodes in the member table fax.gateways, as seen by this node.")
                   .Register(registry)
                   .Add({})) {}

OwnerDirectory::~OwnerDirectory() { Stop(); }

Status OwnerDirectory::Heartbeat(bool leaving) {
  bus::Message m;
  m.topic = std::string(bus::topic::kGateways);
  m.key = options_.self_url;
  if (!leaving) {
    v1::WorkerLoad load;
    load.set_worker(options_.self_url);
    load.set_epoch(epoch_);
    load.set_at_ms(clock_.NowMillis());
    load.set_capacity(1);
    m.value = load.SerializeAsString();
  }
  auto r = producer_->Produce(m);
  return r.ok() ? Status::Ok() : r.status();
}

Status OwnerDirectory::Start() {
  epoch_ = clock_.NowMillis();
  FF_ASSIGN_OR_RETURN(producer_, bus_.NewProducer("gateway-owner"));
  FF_RETURN_IF_ERROR(Heartbeat(false).WithContext("gateway heartbeat"));
  // A fresh Kafka cluster may answer NOT_COORDINATOR for a while: retry retryable errors.
  const auto give_up = clock_.Monotonic() + std::chrono::seconds(60);
  for (;;) {
    follower_ = std::make_unique<TopicFollower>(bus_, std::string(bus::topic::kGateways),
                                                [this](const bus::Record& r) {
                                                  if (r.value.empty()) {
                                                    table_.Apply(r.key, nullptr);
                                                    return;
                                                  }
                                                  v1::WorkerLoad load;
                                                  if (load.ParseFromString(r.value))
                                                    table_.Apply(r.key, &load);
                                                });
    follower_->SetHeartbeats(heartbeats_);
    Status s = follower_->Start();
    if (s.ok()) break;
    follower_.reset();
    if (!s.retryable() || clock_.Monotonic() > give_up) return s.WithContext("fax.gateways");
    FF_LOG_WARN(Logger("owner"), "following fax.gateways: {} (retrying)", s.ToString());
    clock_.SleepUntil(clock_.Monotonic() + std::chrono::milliseconds(500));
  }
  thread_ = std::thread([this] { Run(); });
  FF_LOG_INFO(Logger("owner"), "gateway node {} joined ({} live), owner_mode={}", options_.self_url,
              Members().size(), options_.mode);
  return Status::Ok();
}

void OwnerDirectory::Stop() {
  if (stop_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  if (producer_) {
    Status s = Heartbeat(true);
    if (!s.ok()) FF_LOG_WARN(Logger("owner"), "leaving tombstone failed: {}", s.ToString());
  }
  if (follower_) follower_->Stop();
}

void OwnerDirectory::Run() {
  auto log = Logger("owner");
  size_t last = 0;
  auto beat = RegisterHeartbeat(heartbeats_, "owner");
  while (!stop_) {
    beat->Beat();
    clock_.SleepUntil(clock_.Monotonic() + options_.heartbeat_interval);
    if (stop_) break;
    Status s = Heartbeat(false);
    if (!s.ok()) FF_LOG_WARN(log, "heartbeat failed: {}", s.ToString());
    const auto members = Members();
    members_.Set(static_cast<double>(members.size()));
    if (members.size() != last) {
      FF_LOG_INFO(log, "{} live gateway node(s)", members.size());
      last = members.size();
    }
  }
}

std::vector<std::string> OwnerDirectory::Members() const {
  std::vector<std::string> out;
  bool self = false;
  for (const auto& m : table_.Live()) {
    out.push_back(m.id);
    self = self || m.id == options_.self_url;
  }
  if (!self) out.push_back(options_.self_url);  // this node is alive even before its heartbeat is read back
  return out;
}

std::string OwnerDirectory::OwnerOf(const std::string& tenant) const {
  return OwnerOfSlot(bus::PartitionForKey(tenant, options_.slots));
}

std::string OwnerDirectory::OwnerOfSlot(int32_t slot) const {
  std::string best = options_.self_url;
  uint64_t best_w = 0;
  bool first = true;
  for (const auto& m : Members()) {
    const uint64_t w = claims::RendezvousWeight(slot, m);
    if (first || w > best_w || (w == best_w && m < best)) {
      best = m;
      best_w = w;
      first = false;
    }
  }
  return best;
}

bool OwnerDirectory::Routed(const httplib::Request& req) const {
  const std::string& p = req.path;
  if (p.rfind("/v1/faxes", 0) == 0) {
    // Every GET: list, status, events, report, page previews, and each recipient's page previews
    // (/v1/faxes/{id}/recipients/{rid}/pages/{n}), all answered from the owner's status store.
    if (req.method == "GET") return true;
    if (req.method == "POST" && p == "/v1/faxes") return options_.route_submissions;
    return req.method == "POST" && p.size() > 7 && p.compare(p.size() - 7, 7, "/cancel") == 0;
  }
  return p.rfind("/v1/broadcasts", 0) == 0 || p.rfind("/v1/webhooks", 0) == 0;
}

void OwnerDirectory::Proxy(const std::string& owner, const httplib::Request& req, httplib::Response& res) {
  httplib::Client cli(owner);
  const auto t = options_.proxy_timeout;
  cli.set_connection_timeout(std::chrono::seconds(2));
  cli.set_read_timeout(std::chrono::duration_cast<std::chrono::seconds>(t).count(), 0);
  cli.set_write_timeout(std::chrono::duration_cast<std::chrono::seconds>(t).count(), 0);
  httplib::Headers headers;
  for (const auto& [k, v] : req.headers) {
    std::string lk = k;
    for (auto& c : lk) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lk == "host" || lk == "content-length" || lk == "connection" || lk == "transfer-encoding" ||
        lk == "remote_addr" || lk == "remote_port" || lk == "local_addr" || lk == "local_port" ||
        lk == "accept-encoding" || lk == "content-type")  // set again by the client call below
      continue;
    headers.emplace(k, v);
  }
  headers.emplace(kForwardedBy, options_.self_url);
  const std::string content_type = req.get_header_value("Content-Type");
  auto send = [&]() -> httplib::Result {
    if (req.method == "POST" && req.is_multipart_form_data()) {
      // httplib parses a multipart body into req.files (req.body stays empty): send the parts
      // again, under a new boundary.
      httplib::MultipartFormDataItems items;
      for (const auto& [name, f] : req.files) items.push_back({name, f.content, f.filename, f.content_type});
      return cli.Post(req.target, headers, items);
    }
    if (req.method == "POST") return cli.Post(req.target, headers, req.body, content_type);
    if (req.method == "DELETE") return cli.Delete(req.target, headers, req.body, content_type);
    return cli.Get(req.target, headers);
  };
  httplib::Result r = send();
  if (!r) {
    proxied_.Add({{"outcome", "unreachable"}}).Increment();
    res.status = 503;
    res.set_header("Retry-After", "1");
    res.set_content(nlohmann::json{{"error",
                                    {{"code", "owner_unavailable"},
                                     {"message", "the node owning this tenant (" + owner +
                                                     ") is unreachable; retry shortly"}}}}
                            .dump(2) +
                        "\n",
                    "application/json");
    return;
  }
  proxied_.Add({{"outcome", "ok"}}).Increment();
  res.status = r->status;
  for (const char* h : {"Location", "Retry-After", "Idempotent-Replayed"})
    if (r->has_header(h)) res.set_header(h, r->get_header_value(h));
  res.set_header("X-Faxflow-Served-By", owner);
  res.set_content(r->body, r->get_header_value("Content-Type").empty() ? "application/json"
                                                                       : r->get_header_value("Content-Type"));
}

bool OwnerDirectory::Route(const httplib::Request& req, httplib::Response& res, const std::string& tenant) {
  if (options_.mode != "redirect" && options_.mode != "proxy") return false;
  if (!Routed(req) || req.has_header(kForwardedBy)) return false;
  const std::string owner = OwnerOf(tenant);
  if (owner == options_.self_url) return false;
  if (options_.mode == "redirect") {
    redirects_.Increment();
    res.status = 307;
    res.set_header("Location", owner + req.target);
    res.set_content(nlohmann::json{{"owner", owner}}.dump() + "\n", "application/json");
    return true;
  }
  Proxy(owner, req, res);
  return true;
}

}  // namespace faxflow
