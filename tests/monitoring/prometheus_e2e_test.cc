// A real Prometheus (Debian's `prometheus`, scrape interval 1 s) scraping every process of a
// loaded pipeline: `faxflow all` (embedded bus) using a separate `faxflow blobs` process as its blob
// store. A mixed load runs (delivered, busy, no answer, partial, a document error, a fan-out to
// several recipients, a rejected submission, a broadcast fanned out in two chunks, webhook
// deliveries to a receiver in the test); then
//   - every panel of every dashboard in dashboards/ returns data through the Prometheus HTTP API
//     (no empty panel, no unknown metric; the Kafka-client panels are exempt below, with why);
//   - the counters, as Prometheus sees them, agree with what GET /v1/faxes/{id} says happened
//     (books, outcomes, attempts, pages, renders) and with what the webhook receiver received;
//   - `promtool check metrics` reports nothing on each process's /metrics, and no label looks like
//     an id or a phone number;
//   - /healthz and /readyz answer 200 on every process and the alert rules evaluate without error.
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "tests/e2e/e2e_util.h"

namespace faxflow::testing {
namespace {

constexpr char kAnswer[] = "+15550100000";
constexpr char kBusy[] = "+15550100001";
constexpr char kNoAnswer[] = "+15550100002";
constexpr char kDropAfter2[] = "+15550100005";

// Panels whose metrics exist only on the Kafka bus backend (the embedded bus has no Kafka client).
// The embedded run exempts them (any panel whose every query uses only these metrics);
// KafkaPanelsHaveDataOnTheKafkaBus checks exactly those panels against a private Kafka broker.
const char* const kKafkaOnlyMetricPrefixes[] = {"faxflow_kafka_"};

std::string UrlEncode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string FindProgram(const std::string& name) {
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/bin"}) {
    const std::string p = std::string(dir) + "/" + name;
    if (std::filesystem::exists(p)) return p;
  }
  return "";
}

// Runs a shell command; returns exit status and combined output.
std::pair<int, std::string> RunCommand(const std::string& command) {
  std::string out;
  FILE* f = popen((command + " 2>&1").c_str(), "r");
  if (!f) return {-1, "popen failed"};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  const int status = pclose(f);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

class Prometheus {
 public:
  Prometheus(const std::string& dir, const std::vector<std::pair<std::string, int>>& jobs)
      : port_(FreePort()) {
    std::filesystem::create_directories(dir + "/tsdb");
    const std::string config = dir + "/prometheus.yml";
    std::ofstream out(config);
    out << "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        << "rule_files:\n  - " << SourceDir() << "/monitoring/alerts.yml\n"
        << "scrape_configs:\n";
    for (const auto& [job, port] : jobs) {
      out << "  - job_name: " << job << "\n    static_configs:\n      - targets: ['127.0.0.1:" << port
          << "']\n        labels: {site: e2e}\n";
    }
    out.close();
    std::filesystem::create_directories(dir + "/tsdb");
    proc_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{
            FindProgram("prometheus"), "--config.file=" + config, "--storage.tsdb.path=" + dir + "/tsdb",
            "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--log.level=warn"},
        dir + "/prometheus.log");
  }
  int port() const { return port_; }
  ChildProcess& process() { return *proc_; }

  // GET /api/v1/<path>; the parsed "data", or null (with the failure recorded) on error.
  nlohmann::json Api(const std::string& path) {
    auto r = HttpGet(port_, "/api/v1/" + path);
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (r.status != 200 || j.is_discarded() || j.value("status", "") != "success") {
      last_error_ = "HTTP " + std::to_string(r.status) + ": " + r.body;
      return nullptr;
    }
    return j.at("data");
  }
  // Instant query; the result vector (empty on error, see last_error()).
  nlohmann::json Query(const std::string& expr) {
    auto data = Api("query?query=" + UrlEncode(expr));
    if (data.is_null()) return nlohmann::json::array();
    last_error_.clear();
    return data.at("result");
  }
  // The single value of a scalar-like query (sum(...)), or NaN when there is no result.
  double Value(const std::string& expr) {
    auto r = Query(expr);
    if (r.empty()) return std::nan("");
    return std::stod(r.at(0).at("value").at(1).get<std::string>());
  }
  const std::string& last_error() const { return last_error_; }

 private:
  int port_;
  std::unique_ptr<ChildProcess> proc_;
  std::string last_error_;
};

struct Panel {
  std::string dashboard;
  std::string title;
  std::vector<std::string> exprs;
};

std::vector<Panel> DashboardPanels() {
  std::vector<Panel> out;
  for (const auto& entry : std::filesystem::directory_iterator(SourceDir() + "/dashboards")) {
    if (entry.path().extension() != ".json") continue;
    auto d = nlohmann::json::parse(ReadFileOrDie(entry.path().string()));
    EXPECT_GE(d.value("schemaVersion", 0), 39) << entry.path();
    bool has_datasource_var = false;
    for (const auto& v : d.at("templating").at("list"))
      if (v.value("type", "") == "datasource" && v.value("query", "") == "prometheus")
        has_datasource_var = true;
    EXPECT_TRUE(has_datasource_var) << entry.path() << " has no prometheus datasource variable";
    std::function<void(const nlohmann::json&)> walk = [&](const nlohmann::json& panels) {
      for (const auto& p : panels) {
        if (p.contains("panels")) walk(p.at("panels"));
        if (!p.contains("targets")) continue;
        Panel panel{entry.path().filename().string(), p.value("title", "?"), {}};
        for (const auto& t : p.at("targets")) panel.exprs.push_back(t.value("expr", ""));
        out.push_back(std::move(panel));
      }
    };
    walk(d.at("panels"));
  }
  return out;
}

// Grafana's variables as the test sets them: every site/job/instance (All = .*), and the range of
// the whole run for rate windows.
std::string Substitute(std::string expr, const std::string& window) {
  const std::vector<std::pair<std::string, std::string>> vars = {{"$__rate_interval", window},
                                                                 {"$__interval", window},
                                                                 {"$__range", window},
                                                                 {"$site", ".*"},
                                                                 {"$job", ".*"},
                                                                 {"$instance", ".*"}};
  for (const auto& [k, v] : vars) {
    for (size_t at = expr.find(k); at != std::string::npos; at = expr.find(k, at + v.size()))
      expr.replace(at, k.size(), v);
  }
  return expr;
}

std::set<std::string> MetricNames(const std::string& expr) {
  std::set<std::string> out;
  static const std::regex re("faxflow_[a-z0-9_]+");
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), re); it != std::sregex_iterator(); ++it)
    out.insert(it->str());
  return out;
}

bool KafkaOnly(const Panel& p) {
  bool any = false;
  for (const auto& e : p.exprs) {
    for (const auto& m : MetricNames(e)) {
      bool kafka = false;
      for (const char* prefix : kKafkaOnlyMetricPrefixes) kafka = kafka || m.rfind(prefix, 0) == 0;
      if (!kafka) return false;
      any = true;
    }
  }
  return any;
}

// Labels must be bounded: no label named like an identifier, no value that looks like a fax, job
// or recipient id or a phone number.
std::vector<std::string> UnboundedLabels(const std::string& metrics_text) {
  std::vector<std::string> problems;
  static const std::regex label_re("([a-zA-Z_][a-zA-Z0-9_]*)=\"([^\"]*)\"");
  static const std::set<std::string> banned = {"fax_id", "job_id", "recipient_id", "id",     "number",
                                               "to",     "from",   "phone",        "caller", "callee",
                                               "url",    "path",   "error",        "message"};
  static const std::regex bad_value(R"(^(\+?[0-9][0-9 \-]{6,}|(fax|rcp|job|whe|sub|brd)_[A-Za-z0-9]+)$)");
  std::map<std::string, int> series_per_family;
  std::istringstream in(metrics_text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto brace = line.find('{');
    const std::string name = line.substr(0, std::min(brace, line.find(' ')));
    ++series_per_family[name];
    if (brace == std::string::npos) continue;
    const std::string labels = line.substr(brace, line.find('}') - brace);
    for (auto it = std::sregex_iterator(labels.begin(), labels.end(), label_re); it != std::sregex_iterator();
         ++it) {
      const std::string key = (*it)[1], value = (*it)[2];
      if (banned.count(key)) problems.push_back(name + ": label '" + key + "' names an unbounded identifier");
      if (std::regex_match(value, bad_value))
        problems.push_back(name + ": label value '" + value + "' looks like an id or a number");
    }
  }
  for (const auto& [name, n] : series_per_family)
    if (n > 2000) problems.push_back(name + ": " + std::to_string(n) + " series");
  return problems;
}

// Runs every query of a panel; each must answer, return data that is not only NaN, and use only
// metrics Prometheus knows. Returns the number of queries checked.
int ExpectPanelHasData(Prometheus& prom, const Panel& p, const std::string& window) {
  int checked = 0;
  for (const auto& e : p.exprs) {
    const std::string expr = Substitute(e, window);
    auto result = prom.Query(expr);
    EXPECT_TRUE(prom.last_error().empty())
        << p.dashboard << " / " << p.title << ": " << expr << ": " << prom.last_error();
    EXPECT_FALSE(result.empty()) << p.dashboard << " / " << p.title << " has no data: " << expr;
    bool any_number = false;
    for (const auto& s : result) {
      const std::string v = s.at("value").at(1).get<std::string>();
      any_number = any_number || (v != "NaN" && v != "+Inf" && v != "-Inf");
    }
    EXPECT_TRUE(result.empty() || any_number) << p.dashboard << " / " << p.title << " is only NaN: " << expr;
    for (const auto& m : MetricNames(e)) {
      std::string base = std::regex_replace(m, std::regex("_(bucket|count|sum)$"), "");
      auto exists = prom.Query("count({__name__=~\"" + m + "|" + base + "_bucket\"})");
      EXPECT_FALSE(exists.empty()) << p.dashboard << " / " << p.title << " queries unknown metric " << m;
    }
    ++checked;
  }
  return checked;
}

TEST(PrometheusE2E, EveryDashboardPanelHasDataAndCountersAgreeWithTheApi) {
  const std::string prometheus_bin = FindProgram("prometheus");
  const std::string promtool = FindProgram("promtool");
  ASSERT_FALSE(prometheus_bin.empty()) << "Debian package prometheus is required (scripts/deps)";
  ASSERT_FALSE(promtool.empty()) << "promtool (Debian package prometheus) is required";
  const auto start = std::chrono::steady_clock::now();

  TempDir dir("faxflow-prom-e2e");
  // A separate blob server process, used by `faxflow all` as its blob store.
  const int blob_port = FreePort();
  const int blobs_admin = FreePort();
  ChildProcess blobs({FaxflowBinary(), "blobs", "--set", "data_dir=" + dir.path() + "/blobs", "--set",
                      "blob.listen=127.0.0.1:" + std::to_string(blob_port), "--set",
                      "admin.listen=127.0.0.1:" + std::to_string(blobs_admin)},
                     dir.path() + "/blobs.log");
  ASSERT_TRUE(Await([&] { return HttpGet(blobs_admin, "/readyz").status == 200; }, std::chrono::seconds(30)))
      << blobs.Log();
  // A webhook receiver: the notifier delivers every fax event of the run to it.
  httplib::Server hooks;
  std::atomic<int> hook_posts{0};
  hooks.Post("/hook", [&](const httplib::Request&, httplib::Response& res) {
    ++hook_posts;
    res.status = 200;
    res.set_content("{}", "application/json");
  });
  const int hook_port = hooks.bind_to_any_port("127.0.0.1");
  ASSERT_GT(hook_port, 0);
  std::thread hook_thread([&] { hooks.listen_after_bind(); });
  struct StopHooks {
    httplib::Server& s;
    std::thread& t;
    ~StopHooks() {
      s.stop();
      if (t.joinable()) t.join();
    }
  } stop_hooks{hooks, hook_thread};

  // Retries after 1 s and at most 2 calls per recipient, so retries happen and the run stays short.
  // gateway.max_recipients=3 makes the broadcast fan out in chunks of 3 (chunk 0 plus one more).
  // claims.mode=on runs the imaging claims on the embedded bus too. Loopback URLs are allowed for
  // the webhook receiver above.
  std::filesystem::create_directories(dir.path() + "/all");  // for its log file
  FaxflowAll app(
      dir.path() + "/all",
      {"modem.channels=4", "blob.url=http://127.0.0.1:" + std::to_string(blob_port), "imaging.cpu_seconds=5",
       "imaging.timeout_seconds=15", "modem.retry.busy_seconds=1", "modem.retry.no_answer_seconds=1",
       "modem.retry.protocol_seconds=1", "modem.retry.max_dials=2", "gateway.max_recipients=3",
       "claims.mode=on", "ingest.allow_private_urls=true", "webhooks.initial_backoff_seconds=1"});

  const std::vector<std::pair<std::string, int>> targets = {{"faxflow-all", app.port()},
                                                            {"faxflow-blobs", blobs_admin}};
  Prometheus prom(dir.path() + "/prometheus", targets);
  ASSERT_TRUE(
      Await([&] { return !prom.process().Running() || HttpGet(prom.port(), "/-/ready").status == 200; },
            std::chrono::seconds(60)) &&
      prom.process().Running())
      << prom.process().Log();
  // Prometheus sees every process before the load starts, so the run is on the dashboards as it happens.
  ASSERT_TRUE(Await(
      [&] {
        return prom.Value(R"(count(up{job=~"faxflow.*"} == 1))") == static_cast<double>(targets.size());
      },
      std::chrono::seconds(30), std::chrono::milliseconds(250)))
      << prom.last_error() << prom.process().Log();

  // Health of every process.
  for (const auto& [job, port] : targets) {
    EXPECT_EQ(HttpGet(port, "/healthz").status, 200) << job;
    auto ready = HttpGet(port, "/readyz");
    EXPECT_EQ(ready.status, 200) << job << ": " << ready.body;
  }

  // --- The mixed load ---------------------------------------------------------------------
  {
    httplib::Client client("127.0.0.1", app.port());
    auto r =
        client.Post("/v1/webhooks/endpoints",
                    nlohmann::json{{"url", "http://127.0.0.1:" + std::to_string(hook_port) + "/hook"}}.dump(),
                    "application/json");
    ASSERT_TRUE(r) << "webhook endpoint registration: no answer";
    ASSERT_TRUE(r->status == 201 || r->status == 200) << r->status << " " << r->body;
  }
  const std::string five = WriteNumberedPostScript(dir.path() + "/five.ps", 5);
  std::vector<std::string> submitted;
  submitted.push_back(app.SubmitOk({DataFile("sample.pdf")}, {kAnswer}));   // delivered
  submitted.push_back(app.SubmitOk({DataFile("hello.txt")}, {kBusy}));      // failed busy (retried once)
  submitted.push_back(app.SubmitOk({five}, {kDropAfter2}));                 // partial
  submitted.push_back(app.SubmitOk({DataFile("corrupt.pdf")}, {kAnswer}));  // document error
  submitted.push_back(app.SubmitOk({DataFile("hello.txt")}, {kNoAnswer}));  // failed no_answer
  submitted.push_back(app.SubmitOk({DataFile("hello.txt")}, {kAnswer, kBusy, kDropAfter2}));  // fan-out
  EXPECT_EQ(app.Submit({DataFile("sample.pdf")}, {"12"}).status, 400);                        // rejected
  // A broadcast of 5 recipients: chunk 0 (3 recipients) is rendered, the other 2 fan out as a second fax.
  auto broadcast = HttpPostForm(app.port(), "/v1/broadcasts",
                                {{"file", ReadFileOrDie(DataFile("hello.txt")), "hello.txt"},
                                 {"to", kAnswer, ""},
                                 {"to", "+15550100010", ""},
                                 {"to", kBusy, ""},
                                 {"to", "+15550100011", ""},
                                 {"to", "+15550100012", ""}});
  ASSERT_EQ(broadcast.status, 202) << broadcast.body;
  const int broadcast_recipients = 5;

  // Every fax of the run (the submissions and the broadcast's chunk faxes), once all are done.
  auto list_faxes = [&] {
    std::vector<std::string> ids;
    auto r = HttpGet(app.port(), "/v1/faxes?limit=500");
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (r.status != 200 || j.is_discarded()) return ids;
    for (const auto& f : j.at("faxes")) ids.push_back(f.at("id").get<std::string>());
    return ids;
  };
  int listed_recipients = 0;
  std::vector<std::string> ids;
  const bool all_done = Await(
      [&] {
        ids = list_faxes();
        listed_recipients = 0;
        bool done = ids.size() >= submitted.size() + 2;
        for (const auto& id : ids) {
          auto st = app.Status(id);
          listed_recipients += st.is_object() ? static_cast<int>(st.at("recipients").size()) : 0;
          done = done && st.is_object() && st.value("done", false);
        }
        return done && listed_recipients == 8 + broadcast_recipients;  // 8 submitted recipients
      },
      std::chrono::minutes(3), std::chrono::milliseconds(500));
  ASSERT_TRUE(all_done) << ids.size() << " faxes, " << listed_recipients << " recipients listed";

  std::map<std::string, int> state_count;
  int recipients = 0, attempts = 0, pages_sent = 0, rendered_submissions = 0, rendered_pages = 0,
      document_errors = 0;
  for (const auto& id : ids) {
    auto st = app.Status(id);
    ASSERT_TRUE(st.is_object()) << id;
    bool doc_error = false;
    for (const auto& r : st.at("recipients")) {
      ++recipients;
      ++state_count[r.at("state").get<std::string>()];
      attempts += r.value("attempts", 0);
      pages_sent += r.value("pages_sent", 0);
      doc_error = doc_error || r.value("reason", "") == "document_error";
    }
    if (doc_error) ++document_errors;
    // Broadcast chunk faxes after chunk 0 reuse chunk 0's pages: only submissions are rendered.
    if (!doc_error && std::find(submitted.begin(), submitted.end(), id) != submitted.end()) {
      ++rendered_submissions;
      rendered_pages += st.value("pages", 0);
    }
  }
  // The mix: a dropped call may be resumed by its retry, so only the presence of each kind is fixed.
  EXPECT_GE(state_count["delivered"], 3) << "load did not produce the expected mix";
  EXPECT_GE(state_count["partial"], 1);
  EXPECT_GE(state_count["failed"], 3);
  EXPECT_EQ(state_count["delivered"] + state_count["partial"] + state_count["failed"], recipients);

  // --- Counters agree with the API (as Prometheus scraped them) -------------------------------
  const std::map<std::string, double> expected = {
      {R"(sum(faxflow_gateway_submissions_total{outcome="accepted"}))",
       static_cast<double>(submitted.size())},
      {"sum(faxflow_books_recipients_accepted)", static_cast<double>(recipients)},
      {"sum(faxflow_books_recipients_in_flight)", 0},
      {R"(sum(faxflow_books_recipients_terminal{state="delivered"}))",
       static_cast<double>(state_count["delivered"])},
      {R"(sum(faxflow_books_recipients_terminal{state="partial"}))",
       static_cast<double>(state_count["partial"])},
      {R"(sum(faxflow_books_recipients_terminal{state="failed"}))",
       static_cast<double>(state_count["failed"])},
      {R"(sum(faxflow_modem_outcomes_total{state="delivered"}))",
       static_cast<double>(state_count["delivered"])},
      {"sum(faxflow_modem_attempts_total)", static_cast<double>(attempts)},
      {"sum(faxflow_modem_pages_sent_total)", static_cast<double>(pages_sent)},
      {"sum(faxflow_broadcasts_created_total)", 1},
      {"sum(faxflow_webhook_pending)", 0},
      {R"(sum(faxflow_imaging_renders_total{outcome="document_error"}))",
       static_cast<double>(document_errors)},
  };
  // Prometheus lags the processes by a scrape (and the books by a refresh): wait until it agrees.
  std::map<std::string, double> seen;
  const bool agree = Await(
      [&] {
        bool all = true;
        for (const auto& [q, want] : expected) {
          seen[q] = prom.Value(q);
          all = all && seen[q] == want;
        }
        return all;
      },
      std::chrono::seconds(30), std::chrono::milliseconds(500));
  EXPECT_TRUE(agree);
  for (const auto& [q, want] : expected) EXPECT_EQ(seen[q], want) << q;
  // Recipients by way in: REST submissions count in the gateway's counter, a broadcast's fan-out
  // (every chunk after chunk 0, which is submitted internally) in the broadcast's. The books count all.
  const int submitted_recipients = recipients - broadcast_recipients;
  const int chunk0 = 3;  // gateway.max_recipients
  EXPECT_EQ(prom.Value("sum(faxflow_gateway_recipients_accepted_total)"),
            static_cast<double>(submitted_recipients));
  EXPECT_EQ(prom.Value("sum(faxflow_broadcast_jobs_queued_total)"),
            static_cast<double>(broadcast_recipients - chunk0));
  // The broadcast's chunk 0 is rendered like any submission.
  EXPECT_EQ(prom.Value(R"(sum(faxflow_imaging_renders_total{outcome="ok"}))"),
            static_cast<double>(rendered_submissions + 1));
  // Webhooks: what the notifier counts as delivered is what the receiver got.
  EXPECT_TRUE(Await(
      [&] {
        return prom.Value("sum(faxflow_webhook_delivered_total)") == hook_posts.load() && hook_posts > 0;
      },
      std::chrono::seconds(30), std::chrono::milliseconds(500)))
      << prom.Value("sum(faxflow_webhook_delivered_total)") << " delivered vs " << hook_posts.load()
      << " received";
  (void)rendered_pages;
  // A few more scrapes after the last change, so every rate window has samples on both sides.
  const double scrapes = prom.Value(R"(count_over_time(up{job="faxflow-all"}[10m]))");
  ASSERT_TRUE(
      Await([&] { return prom.Value(R"(count_over_time(up{job="faxflow-all"}[10m]))") >= scrapes + 3; },
            std::chrono::seconds(30), std::chrono::milliseconds(250)));

  // --- Every panel of every dashboard has data -------------------------------------------------
  const auto elapsed =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start);
  const std::string window = std::to_string(elapsed.count() + 30) + "s";
  const auto panels = DashboardPanels();
  ASSERT_GE(panels.size(), 40u) << "dashboards went missing";
  int checked = 0, exempt = 0;
  for (const auto& p : panels) {
    if (KafkaOnly(p)) {
      ++exempt;  // checked by KafkaPanelsHaveDataOnTheKafkaBus
      continue;
    }
    checked += ExpectPanelHasData(prom, p, window);
  }
  std::cerr << "checked " << checked << " panel queries, " << exempt << " Kafka-only panels exempt\n";

  // --- promtool check metrics and bounded labels on every process ---------------------------------
  for (const auto& [job, port] : targets) {
    auto m = HttpGet(port, "/metrics");
    ASSERT_EQ(m.status, 200) << job;
    const std::string file = dir.path() + "/" + job + ".metrics";
    std::ofstream(file) << m.body;
    // For scripts/metrics-doc --scrape (fills the labels column of docs/metrics.md).
    if (const char* keep = std::getenv("FAXFLOW_METRICS_SNAPSHOT_DIR"))
      std::ofstream(std::string(keep) + "/" + job + ".metrics") << m.body;
    auto [rc, out] = RunCommand(promtool + " check metrics < " + file);
    EXPECT_EQ(rc, 0) << job << ": promtool check metrics:\n" << out;
    EXPECT_TRUE(out.empty()) << job << ": promtool check metrics reported:\n" << out;
    for (const auto& problem : UnboundedLabels(m.body)) ADD_FAILURE() << job << ": " << problem;
  }

  // --- Every process is up and ready as Prometheus sees it; the rules evaluate without error -----
  EXPECT_EQ(prom.Value(R"(count(up{job=~"faxflow.*"} == 1))"), static_cast<double>(targets.size()));
  EXPECT_EQ(prom.Value("count(faxflow_process_ready == 1)"), static_cast<double>(targets.size()));
  auto rules = prom.Api("rules");
  ASSERT_FALSE(rules.is_null()) << prom.last_error();
  int rule_count = 0;
  for (const auto& g : rules.at("groups")) {
    for (const auto& r : g.at("rules")) {
      ++rule_count;
      EXPECT_EQ(r.value("health", ""), "ok") << r.value("name", "") << ": " << r.value("lastError", "");
    }
  }
  EXPECT_GE(rule_count, 8);
  // Nothing is wrong with this pipeline, so no alert may be firing.
  for (const auto& g : rules.at("groups"))
    for (const auto& r : g.at("rules")) EXPECT_NE(r.value("state", ""), "firing") << r.value("name", "");
}

// The Kafka variant for the panels the embedded run exempts: `faxflow all` on a private Kafka
// broker (scripts/kafka, fresh state, free port: no topic clash with the shared broker), scraped by
// a real Prometheus, two faxes (delivered and busy); every Kafka-only panel must have data.
TEST(PrometheusE2E, KafkaPanelsHaveDataOnTheKafkaBus) {
  ASSERT_FALSE(FindProgram("prometheus").empty()) << "Debian package prometheus is required (scripts/deps)";
  const auto start = std::chrono::steady_clock::now();
  TempDir dir("faxflow-prom-kafka");
  PrivateKafkaBroker broker(dir.path() + "/kafka");  // fresh state, free ports; stopped at the end
  ASSERT_TRUE(broker.ok()) << "scripts/kafka could not start a private broker";

  // The broker answers metadata requests before faxflow starts (its start-up waits only 60 s).
  ASSERT_TRUE(Await([&] { return RunCommand("kcat -m 5 -L -b " + broker.bootstrap()).first == 0; },
                    std::chrono::seconds(90), std::chrono::milliseconds(500)));
  std::filesystem::create_directories(dir.path() + "/all");
  FaxflowAll app(dir.path() + "/all", {"bus.backend=kafka", "kafka.bootstrap=" + broker.bootstrap(),
                                       "modem.channels=2", "modem.retry.max_dials=1", "claims.mode=off"});
  const std::vector<std::pair<std::string, int>> targets = {{"faxflow-all", app.port()}};
  Prometheus prom(dir.path() + "/prometheus", targets);
  ASSERT_TRUE(
      Await([&] { return !prom.process().Running() || HttpGet(prom.port(), "/-/ready").status == 200; },
            std::chrono::seconds(60)) &&
      prom.process().Running())
      << prom.process().Log();
  ASSERT_TRUE(Await([&] { return prom.Value(R"(count(up{job="faxflow-all"} == 1))") == 1; },
                    std::chrono::seconds(30), std::chrono::milliseconds(250)));

  app.SubmitOk({DataFile("hello.txt")}, {kAnswer});
  app.SubmitOk({DataFile("hello.txt")}, {kBusy});
  // Awaited through the modem's counters (this variant checks the Kafka client panels; the status
  // path is covered by the embedded run and tests/e2e_kafka).
  ASSERT_TRUE(Await([&] { return prom.Value("sum(faxflow_modem_outcomes_total)") == 2; },
                    std::chrono::seconds(90), std::chrono::milliseconds(250)))
      << app.process().Log().substr(0, 20000);
  const double scrapes = prom.Value(R"(count_over_time(up{job="faxflow-all"}[10m]))");
  ASSERT_TRUE(
      Await([&] { return prom.Value(R"(count_over_time(up{job="faxflow-all"}[10m]))") >= scrapes + 3; },
            std::chrono::seconds(30), std::chrono::milliseconds(250)));

  const auto elapsed =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start);
  const std::string window = std::to_string(elapsed.count() + 30) + "s";
  int checked = 0;
  for (const auto& p : DashboardPanels())
    if (KafkaOnly(p)) checked += ExpectPanelHasData(prom, p, window);
  EXPECT_GE(checked, 6) << "no Kafka-only panels found";
  auto m = HttpGet(app.port(), "/metrics");
  const std::string file = dir.path() + "/kafka.metrics";
  std::ofstream(file) << m.body;
  auto [rc, out] = RunCommand(FindProgram("promtool") + " check metrics < " + file);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_TRUE(out.empty()) << "promtool check metrics reported:\n" << out;
}

}  // namespace
}  // namespace faxflow::testing
