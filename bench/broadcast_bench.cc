// broadcast_bench: broadcast fan-out time (issue 6): from the moment POST /v1/broadcasts is
// accepted (the broadcast's created time) to the moment every recipient's job is on fax.jobs
// (queued_ms, reported by GET /v1/broadcasts/{id}), for 10,000 recipients (--quick: 1,000).
// It includes the one Ghostscript render of the 3-page document (chunk 0) and the status record
// of every chunk. The pipeline runs in this process (gateway + imaging roles on the embedded bus,
// no modem, so nothing dials). Raw baseline in the same run: producing the same number of
// OutboundJob records straight to fax.jobs with ProduceBatch (the bus floor, no render).
// Rows broadcast.fanout_seconds.{1000,10000}.cover (info only; --quick: 1,000): the same with a
// per-recipient cover page (a distinct name each, so every cover is stored and rendered: chunk
// submissions go through imaging, and "queued" is when the last chunk's jobs are on fax.jobs).
// Flags: --quick, --only SUBSTRING, --no-kafka (embedded only anyway). JSON lines on stdout.
// FAXFLOW_BENCH_LOG=info shows the pipeline's logs (per-chunk render times) on stderr.
#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "app/pipeline.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "schemas/job.pb.h"
#include "topics/catalogue.h"

namespace {

using Steady = std::chrono::steady_clock;

std::string ThreePagePostScript() {
  std::string ps = "%!PS-Adobe-3.0\n";
  for (int p = 1; p <= 3; ++p)
    ps += "/Helvetica findfont 48 scalefont setfont 72 600 moveto (Broadcast page " + std::to_string(p) +
          ") show 72 72 moveto 540 72 lineto 540 720 lineto stroke showpage\n";
  return ps;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  std::string only;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0)
      quick = true;
    else if (std::strcmp(argv[i], "--only") == 0 && i + 1 < argc)
      only = argv[++i];
  }
  const int n = quick ? 1000 : 10000;
  const std::string name = "broadcast.fanout_seconds." + std::to_string(n);
  // Cover rows (info only): the same broadcast with a per-recipient cover page (a distinct name
  // per recipient, so every cover is rendered: the worst case), for 1,000 and (full) 10,000.
  std::vector<int> cover_sizes = {1000};
  if (!quick) cover_sizes.push_back(10000);
  auto cover_name = [](int size) { return "broadcast.fanout_seconds." + std::to_string(size) + ".cover"; };
  const bool plain_row = only.empty() || name.find(only) != std::string::npos;
  bool any_cover_row = false;
  for (int size : cover_sizes)
    any_cover_row = any_cover_row || only.empty() || cover_name(size).find(only) != std::string::npos;
  if (!plain_row && !any_cover_row) return 0;
  faxflow::SetLogLevel(std::getenv("FAXFLOW_BENCH_LOG") ? std::getenv("FAXFLOW_BENCH_LOG") : "warn");

  const auto dir =
      std::filesystem::temp_directory_path() / ("faxflow-broadcast-bench-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  faxflow::Config config = faxflow::DefaultConfig();
  config.data_dir = dir.string();
  config.gateway_listen = "127.0.0.1:0";
  config.gateway_auth = "none";
  config.admin_listen = "127.0.0.1:0";
  auto pipeline =
      faxflow::Pipeline::Start(config, faxflow::Roles{true, true, false}, faxflow::SystemClock::Instance());
  if (!pipeline.ok()) {
    std::cout << nlohmann::json{{"bench", name}, {"skipped", pipeline.status().ToString()}}.dump() << "\n";
    return 0;
  }
  const int port = (*pipeline)->http_port();

  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(120, 0);
  client.set_write_timeout(120, 0);
  // POSTs a broadcast of `count` recipients (numbers from `prefix`) and waits until every job is
  // queued; returns {accepted round trip, accepted -> all queued} in seconds, or an error text.
  struct Run {
    double accept_s = -1, fanout_s = -1;
    std::string error;
  };
  auto broadcast = [&](int count, const char* prefix, const std::string& options) {
    Run run;
    std::string csv = "to,name\n";
    for (int i = 0; i < count; ++i) {
      char num[20];
      std::snprintf(num, sizeof(num), "%s%04d", prefix, i);
      csv += std::string(num) + ",Customer " + std::to_string(i) + "\n";
    }
    httplib::MultipartFormDataItems items = {
        {"recipients", csv, "recipients.csv", "text/csv"},
        {"file", ThreePagePostScript(), "three.ps", "application/postscript"}};
    if (!options.empty()) items.push_back({"options", options, "", "application/json"});
    const auto t0 = Steady::now();
    auto r = client.Post("/v1/broadcasts", items);
    if (!r || r->status != 202) {
      run.error = "POST /v1/broadcasts failed: " + (r ? r->body : "no answer");
      return run;
    }
    run.accept_s = std::chrono::duration<double>(Steady::now() - t0).count();
    const std::string id = nlohmann::json::parse(r->body).at("id");
    nlohmann::json p;
    for (;;) {
      auto g = client.Get("/v1/broadcasts/" + id);
      if (g && g->status == 200) {
        p = nlohmann::json::parse(g->body);
        if (p.contains("queued_ms")) break;
      }
      if (std::chrono::duration<double>(Steady::now() - t0).count() > 900) {
        run.error = "fan-out did not finish in 900 s";
        return run;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    run.fanout_s =
        static_cast<double>(p.at("queued_ms").get<int64_t>() - p.at("created_ms").get<int64_t>()) / 1000.0;
    std::cerr << "broadcast " << id << " (" << count << (options.empty() ? "" : ", with covers")
              << "): accepted in " << run.accept_s << " s (POST round trip), all jobs queued " << run.fanout_s
              << " s after acceptance\n";
    return run;
  };
  // The plain fan-out first (as before covers existed), then the cover rows.
  const Run plain = plain_row ? broadcast(n, "+1555600", "") : Run{};
  if (plain_row && !plain.error.empty())
    std::cout << nlohmann::json{{"bench", name}, {"skipped", plain.error}}.dump() << "\n";
  if (plain_row && plain.error.empty()) {
    const double fanout_s = plain.fanout_s, accept_s = plain.accept_s;

    // Raw: the same number of jobs produced straight to fax.jobs.
    auto producer = (*pipeline)->bus().NewProducer("bench-raw");
    double raw_s = -1;
    if (producer.ok()) {
      faxflow::v1::OutboundJob job;
      job.set_fax_id("fax_raw");
      job.set_tenant("default");
      for (int i = 0; i < 3; ++i) job.add_pages()->set_blob_id(std::string(64, 'a'));
      std::vector<faxflow::bus::Message> batch;
      const auto r0 = Steady::now();
      for (int i = 0; i < n; ++i) {
        char num[20];
        std::snprintf(num, sizeof(num), "+1555700%04d", i);
        job.set_job_id("rcp_raw" + std::to_string(i));
        job.set_number(num);
        faxflow::bus::Message m;
        m.topic = std::string(faxflow::bus::topic::kJobs);
        m.key = num;
        m.value = job.SerializeAsString();
        batch.push_back(std::move(m));
        if (batch.size() == 1000) {
          if (!(*producer)->ProduceBatch(batch).ok()) break;
          batch.clear();
        }
      }
      if (!batch.empty()) (void)(*producer)->ProduceBatch(batch);
      raw_s = std::chrono::duration<double>(Steady::now() - r0).count();
    }
    nlohmann::json row{{"bench", name}, {"faxflow", fanout_s}, {"unit", "s"},
                       {"target", 5.0}, {"better", "lower"},   {"compare", "absolute"}};
    if (raw_s > 0) {
      row["raw"] = raw_s;
      row["ratio"] = fanout_s / raw_s;
    } else {
      row["raw"] = nullptr;
      row["ratio"] = nullptr;
    }
    std::cout << row.dump() << "\n";
    std::cout << nlohmann::json{{"bench", "broadcast.accept_seconds." + std::to_string(n)},
                                {"faxflow", accept_s},
                                {"raw", nullptr},
                                {"unit", "s"},
                                {"ratio", nullptr},
                                {"target", nullptr},
                                {"better", "lower"},
                                {"compare", "absolute"}}
                     .dump()
              << "\n";
  }
  for (int size : cover_sizes) {
    const std::string row = cover_name(size);
    if (!only.empty() && row.find(only) == std::string::npos) continue;
    const Run c = broadcast(
        size, size == 1000 ? "+1555610" : "+1555620",
        R"({"cover":{"template":"basic","fields":{"from_name":"Acme Billing","subject":"Invoice"}}})");
    if (!c.error.empty()) {
      std::cout << nlohmann::json{{"bench", row}, {"skipped", c.error}}.dump() << "\n";
      continue;
    }
    std::cout << nlohmann::json{{"bench", row},      {"faxflow", c.fanout_s}, {"raw", nullptr},
                                {"unit", "s"},       {"ratio", nullptr},      {"target", nullptr},
                                {"better", "lower"}, {"compare", "absolute"}}
                     .dump()
              << "\n";
  }
  (*pipeline)->Stop();
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return 0;
}
