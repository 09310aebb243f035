// Broadcasts survive the loss of the node that accepted them (docs/broadcast.md, fax.broadcasts):
// separate processes on a private Kafka broker: a blob server, a modem worker, an imaging worker
// and two gateway nodes with owner routing (proxy). Broadcast X is created and fully fanned out;
// then imaging stops and broadcast Y is created (its chunk 0 cannot render, so its fan-out is
// still to do). The owner of the tenant is killed with SIGKILL, imaging starts again, and the
// surviving node (the tenant's new owner):
//   - answers GET /v1/broadcasts/{id} and results.csv for both, from its own replicated stores;
//   - resumes Y's fan-out at the replicated cursor (chunk ids derived from the broadcast id);
//   - sees every recipient of both end in a terminal state, the answering numbers delivered, each
//     recipient dialled once.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "tests/support/support.h"

namespace faxflow::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr int kBusy = 250;      // distinct numbers answering busy (sim.behaviours)
constexpr int kAnswering = 10;  // numbers not listed: the sim far end answers

std::string BusyNumber(int i) {
  char buf[20];
  std::snprintf(buf, sizeof(buf), "+1555300%04d", i);
  return buf;
}
std::string AnswerNumber(int i) {
  char buf[20];
  std::snprintf(buf, sizeof(buf), "+1555400%04d", i);
  return buf;
}

class Processes {
 public:
  Processes(std::string dir, std::string bootstrap) : dir_(std::move(dir)), bootstrap_(std::move(bootstrap)) {
    blob_port_ = FreePort();
  }
  std::unique_ptr<ChildProcess> Spawn(const std::string& role, const std::string& name,
                                      const std::vector<std::string>& extra) const {
    std::vector<std::string> argv = {
        FaxflowBinary(), role,
        "--kafka",       bootstrap_,
        "--set",         "data_dir=" + dir_ + "/" + name,
        "--set",         "blob.url=http://127.0.0.1:" + std::to_string(blob_port_),
        "--set",         "admin.listen=127.0.0.1:0",
        "--set",         "log.level=info"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<ChildProcess>(argv, dir_ + "/" + name + ".log");
  }
  std::unique_ptr<ChildProcess> Blobs() const {
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{FaxflowBinary(), "blobs", "--set", "data_dir=" + dir_ + "/blobs", "--set",
                                 "blob.listen=127.0.0.1:" + std::to_string(blob_port_), "--set",
                                 "admin.listen=127.0.0.1:0"},
        dir_ + "/blobs.log");
  }
  std::unique_ptr<ChildProcess> Gateway(const std::string& name, int port) const {
    return Spawn(
        "gateway", name,
        {"--set", "gateway.listen=127.0.0.1:" + std::to_string(port), "--set", "gateway.auth=none", "--set",
         "gateway.owner_mode=proxy", "--set", "gateway.member_timeout_seconds=4", "--set",
         "gateway.max_recipients=50", "--set", "broadcast.batch_size=50", "--set", "webhooks.enabled=false"});
  }
  std::unique_ptr<ChildProcess> Imaging(const std::string& name) const { return Spawn("imaging", name, {}); }
  std::unique_ptr<ChildProcess> Modem() const {
    std::string behaviours;
    for (int i = 0; i < kBusy; ++i) behaviours += BusyNumber(i) + "=busy;";
    return Spawn("modem", "modem",
                 {"--set", "modem.channels=8", "--set", "sim.received_dir=" + dir_ + "/received", "--set",
                  "sim.behaviours=" + behaviours});
  }
  int blob_port() const { return blob_port_; }

 private:
  std::string dir_, bootstrap_;
  int blob_port_ = 0;
};

httplib::Result Get(int port, const std::string& path, bool local = false) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(2, 0);
  c.set_read_timeout(20, 0);
  httplib::Headers h;
  if (local) h.emplace("X-Faxflow-Forwarded-By", "test");  // served by this node's own stores
  return c.Get(path, h);
}

TEST(OwnerBroadcastFailover, TheNewOwnerAnswersAndResumesBroadcastsOfAKilledNode) {
  TempDir dir("faxflow-bc-failover");
  PrivateKafkaBroker broker(dir.path() + "/kafka");
  ASSERT_TRUE(broker.ok()) << "scripts/kafka could not start a private broker";
  Processes cluster(dir.path(), broker.bootstrap());
  auto blobs = cluster.Blobs();
  ASSERT_TRUE(Await([&] { return HttpGet(cluster.blob_port(), "/healthz").status == 200; }, 30s))
      << blobs->Log();
  auto modem = cluster.Modem();
  auto imaging = cluster.Imaging("imaging");
  const int ports[2] = {FreePort(), FreePort()};
  std::unique_ptr<ChildProcess> gw[2] = {cluster.Gateway("gw0", ports[0]), cluster.Gateway("gw1", ports[1])};
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(
        Await([&] { return !gw[i]->Running() || HttpGet(ports[i], "/readyz").status == 200; }, 120s, 200ms) &&
        gw[i]->Running())
        << gw[i]->Log();
  for (int i = 0; i < 2; ++i)
    ASSERT_TRUE(
        Await([&] { return ScrapeMetric(ports[i], "faxflow_gateway_owner_members") == 2; }, 30s, 200ms))
        << gw[i]->Log();

  // Recipients: busy numbers (fail at once with max_dials=1) and a few answering ones.
  auto recipients_csv = [](int busy_from, int busy_to, int answering_from, int answering_to) {
    std::string csv = "to,name\n";
    for (int i = busy_from; i < busy_to; ++i) csv += BusyNumber(i) + ",busy" + std::to_string(i) + "\n";
    for (int i = answering_from; i < answering_to; ++i)
      csv += AnswerNumber(i) + ",ans" + std::to_string(i) + "\n";
    return csv;
  };
  auto create = [&](const std::string& csv, std::string* served_by) {
    httplib::Client c("127.0.0.1", ports[0]);
    c.set_read_timeout(60, 0);
    httplib::MultipartFormDataItems items = {{"recipients", csv, "r.csv", "text/csv"},
                                             {"file", "failover broadcast\n", "doc.txt", "text/plain"},
                                             {"options", R"({"max_dials":1})", "", ""}};
    auto r = c.Post("/v1/broadcasts", items);
    if (!r || r->status != 202) {
      ADD_FAILURE() << "create: " << (r ? std::to_string(r->status) + " " + r->body : "no answer");
      return std::string();
    }
    *served_by = r->has_header("X-Faxflow-Served-By") ? r->get_header_value("X-Faxflow-Served-By")
                                                      : "http://127.0.0.1:" + std::to_string(ports[0]);
    return json::parse(r->body).at("id").get<std::string>();
  };
  auto progress = [&](int port, const std::string& id, bool local = false) {
    auto r = Get(port, "/v1/broadcasts/" + id, local);
    return r && r->status == 200 ? json::parse(r->body) : json::object();
  };

  // X: 100 recipients (2 chunks), fanned out completely while its owner is alive.
  std::string owner_url;
  const std::string x = create(recipients_csv(0, 95, 0, 5), &owner_url);
  ASSERT_FALSE(x.empty());
  const int owner = owner_url == "http://127.0.0.1:" + std::to_string(ports[0]) ? 0 : 1;
  ASSERT_EQ(owner_url, "http://127.0.0.1:" + std::to_string(ports[owner]));
  const int survivor = 1 - owner;
  json px;
  ASSERT_TRUE(Await(
      [&] {
        px = progress(ports[owner], x);
        return px.value("queued_ms", int64_t{0}) > 0;
      },
      90s, 200ms))
      << px.dump() << "\n"
      << imaging->Log();

  // Y: 160 recipients (4 chunks), created while imaging is down: chunk 0 waits to be rendered.
  imaging->Signal(SIGKILL);
  imaging->Wait(10s);
  std::string y_owner;
  const std::string y = create(recipients_csv(95, kBusy, 5, kAnswering), &y_owner);
  ASSERT_FALSE(y.empty());
  EXPECT_EQ(y_owner, owner_url);
  const int64_t total_x = 100, total_y = (kBusy - 95) + (kAnswering - 5);
  // Both records reach the survivor's own store (read locally there).
  for (const auto& id : {x, y})
    ASSERT_TRUE(Await([&] { return progress(ports[survivor], id, true).contains("id"); }, 20s))
        << id << " is not replicated to the other node";
  EXPECT_EQ(progress(ports[owner], y).value("state", ""), "rendering");

  // kill -9 the owner; imaging comes back; the survivor takes the tenant and the broadcasts.
  gw[owner]->Signal(SIGKILL);
  gw[owner]->Wait(10s);
  const auto killed_at = std::chrono::steady_clock::now();
  auto imaging2 = cluster.Imaging("imaging");
  json p;
  for (const auto& [id, total] : {std::pair{x, total_x}, std::pair{y, total_y}}) {
    ASSERT_TRUE(Await(
        [&] {
          p = progress(ports[survivor], id);
          return p.value("state", "") == "done";
        },
        180s, 500ms))
        << id << " on the survivor: " << p.dump() << "\n"
        << gw[survivor]->Log().substr(0, 20000);
    std::cerr << id << ": done on the survivor "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count()
              << " s after the owner's kill -9\n";
    EXPECT_EQ(p.value("recipients", int64_t{0}), total);
    EXPECT_EQ(p.value("terminal", int64_t{0}), total) << p.dump();
    EXPECT_GT(p.value("queued_ms", int64_t{0}), 0);

    auto r = Get(ports[survivor], "/v1/broadcasts/" + id + "/results.csv");
    ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
    auto rows = SplitCsv(r->body);
    ASSERT_EQ(rows.size(), static_cast<size_t>(total + 1)) << r->body.substr(0, 2000);
    const auto& header = rows[0];
    auto col = [&](const std::string& name) {
      for (size_t i = 0; i < header.size(); ++i)
        if (header[i] == name) return i;
      ADD_FAILURE() << "no column " << name;
      return size_t{0};
    };
    const size_t c_rid = col("recipient_id"), c_fax = col("fax_id"), c_to = col("to"), c_state = col("state");
    std::set<std::string> ids, faxes;
    int delivered = 0;
    for (size_t i = 1; i < rows.size(); ++i) {
      const auto& row = rows[i];
      ASSERT_GT(row.size(), c_state) << r->body.substr(0, 2000);
      EXPECT_FALSE(row[c_rid].empty()) << "row " << i;
      ids.insert(row[c_rid]);
      faxes.insert(row[c_fax]);
      const bool answering = row[c_to].rfind("+1555400", 0) == 0;
      EXPECT_EQ(row[c_state], answering ? "delivered" : "failed") << "row " << i << " " << row[c_to];
      delivered += row[c_state] == "delivered";
    }
    EXPECT_EQ(ids.size(), static_cast<size_t>(total)) << "one recipient id per row";
    EXPECT_EQ(faxes.size(), static_cast<size_t>((total + 49) / 50)) << "one fax per chunk of 50";
    EXPECT_EQ(delivered, 5);
    // A chunk fax reads on the survivor too (its status record came through fax.broadcasts).
    auto f = Get(ports[survivor], "/v1/faxes/" + *faxes.rbegin());
    ASSERT_TRUE(f);
    EXPECT_EQ(f->status, 200) << f->body;
  }
  // Y's fan-out (chunks 1..3, 60 jobs) was produced by the survivor, after the kill.
  EXPECT_GE(ScrapeMetric(ports[survivor], "faxflow_broadcast_jobs_queued_total"),
            static_cast<double>(total_y - 50));
  // Each recipient was dialled once (the sim line logs every call with its job id and attempt;
  // a job produced again by the resumed fan-out is suppressed by the modem's dial ledger).
  std::set<std::string> called;
  int calls = 0;
  {
    std::ifstream in(dir.path() + "/received/calls.jsonl");
    std::string line;
    while (std::getline(in, line)) {
      auto j = json::parse(line, nullptr, false);
      if (j.is_discarded()) continue;
      ++calls;
      called.insert(j.value("job_id", ""));
    }
  }
  EXPECT_EQ(calls, total_x + total_y) << "every recipient dialled once (max_dials=1)";
  EXPECT_EQ(called.size(), static_cast<size_t>(calls)) << "a recipient was dialled twice";
}

}  // namespace
}  // namespace faxflow::testing
