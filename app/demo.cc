#include "app/demo.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "app/pipeline.h"
#include "common/log.h"
#include "pages/pages.h"

extern const unsigned char faxflow_sample_pdf[];
extern const std::size_t faxflow_sample_pdf_size;

namespace faxflow {
namespace {

constexpr char kDemoNumber[] = "+15550100000";

std::vector<nlohmann::json> CallsOf(const std::string& received_dir, const std::string& job_id) {
  std::vector<nlohmann::json> out;
  std::ifstream in(received_dir + "/calls.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("job_id", "") == job_id) out.push_back(j);
  }
  return out;
}

}  // namespace

int RunDemo(Config config, bool keep_running) {
  // A fresh data dir per run, kept afterwards so the received fax can be looked at.
  config.data_dir = config.data_dir + "/demo";
  std::error_code ec;
  std::filesystem::remove_all(config.data_dir, ec);
  config.sim_received_dir = config.data_dir + "/received";
  config.bus_backend = "embedded";
  // The demo talks to its own in-process gateway on loopback without an API key (docs/api.md).
  config.gateway_auth = "none";
  if (!keep_running) config.gateway_listen = "127.0.0.1:0";
  SetLogLevel("warn");

  std::cout << "faxflow demo: starting the embedded pipeline in " << config.data_dir << "\n";
  auto pipeline = Pipeline::Start(config, Roles::All(), SystemClock::Instance());
  if (!pipeline.ok()) {
    std::cerr << "faxflow demo: cannot start: " << pipeline.status().ToString() << "\n";
    return 1;
  }
  const int port = (*pipeline)->http_port();
  std::cout << "  REST API on http://127.0.0.1:" << port << "\n";

  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(std::chrono::seconds(60));
  httplib::MultipartFormDataItems items = {
      {"file", std::string(reinterpret_cast<const char*>(faxflow_sample_pdf), faxflow_sample_pdf_size), "sample.pdf",
       "application/pdf"},
      {"to", kDemoNumber, "", ""},
      {"options", R"({"resolution":"fine","tsi":"faxflow demo","tags":["demo"]})", "", "application/json"},
  };
  auto res = client.Post("/v1/faxes", items);
  if (!res || res->status != 202) {
    std::cerr << "faxflow demo: submission failed: " << (res ? res->body : httplib::to_string(res.error())) << "\n";
    return 1;
  }
  const std::string fax_id = nlohmann::json::parse(res->body).at("id");
  std::cout << "  submitted sample.pdf (" << faxflow_sample_pdf_size << " bytes) to " << kDemoNumber << ": " << fax_id
            << "\n";

  nlohmann::json status;
  std::string last_state;
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + std::chrono::minutes(5);
  while (std::chrono::steady_clock::now() < deadline) {
    auto st = client.Get(("/v1/faxes/" + fax_id).c_str());
    if (st && st->status == 200) {
      status = nlohmann::json::parse(st->body);
      const auto& r = status.at("recipients").at(0);
      const std::string state = r.value("state", "");
      if (state != last_state) {
        std::cout << "  " << state << "\n";
        last_state = state;
      }
      if (status.value("done", false)) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // polling the public API, as a client would
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  if (!status.value("done", false)) {
    std::cerr << "faxflow demo: the fax did not finish within 5 minutes; last status: " << status.dump() << "\n";
    return 1;
  }
  const auto& r = status.at("recipients").at(0);
  const bool delivered = r.value("state", "") == "delivered";
  std::printf("\noutcome:      %s%s\n", r.value("state", "").c_str(),
              r.value("reason", "").empty() ? "" : (" (" + r.value("reason", "") + ")").c_str());
  std::printf("pages:        %d/%d confirmed by the far end\n", r.value("pages_sent", 0), r.value("pages_total", 0));
  std::printf("call:         %s, %d bit/s, attempt %d, remote CSID \"%s\"\n", r.value("completion", "").c_str(),
              r.value("bit_rate", 0), r.value("attempts", 0), r.value("remote_csid", "").c_str());
  std::printf("took:         %.1f s from submission to outcome\n", seconds);

  // Compare what the far end received with what was rendered, pixel for pixel.
  const std::string job_id = r.value("id", "");
  std::vector<pages::Bitmap> received;
  std::string received_path;
  for (const auto& call : CallsOf(config.sim_received_dir, job_id)) {
    received_path = call.value("received_path", "");
    if (received_path.empty()) continue;
    auto decoded = pages::DecodeFile(received_path);
    if (!decoded.ok()) {
      std::cerr << "faxflow demo: cannot decode " << received_path << ": " << decoded.status().ToString() << "\n";
      return 1;
    }
    received.insert(received.end(), decoded->begin(), decoded->end());
  }
  std::vector<pages::Bitmap> rendered;
  auto fax = (*pipeline)->status_store()->Get(fax_id);
  if (fax.ok() && fax->has_value()) {
    for (const auto& blob_id : (*fax)->page_blob_ids()) {
      auto page = (*pipeline)->blobs().Get(blob_id);
      if (!page.ok()) break;
      auto decoded = pages::DecodePages(*page);
      if (decoded.ok()) rendered.insert(rendered.end(), decoded->begin(), decoded->end());
    }
  }
  const Status same = pages::ComparePages(rendered, received);
  std::printf("identical:    %s (%zu rendered pages vs %zu received pages, compared row by row)\n",
              same.ok() ? "yes" : "NO", rendered.size(), received.size());
  if (!same.ok()) std::printf("              %s\n", same.message().c_str());
  std::printf("received:     %s\n", received_path.empty() ? "(nothing received)" : received_path.c_str());
  if (!received_path.empty()) std::printf("              view it with: tiff2pdf -o received.pdf %s\n", received_path.c_str());

  if (keep_running) {
    std::cout << "\nfaxflow keeps running on http://127.0.0.1:" << port << " (Ctrl-C to stop)\n";
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    sigwait(&set, &sig);
  }
  (*pipeline)->Stop();
  return delivered && same.ok() ? 0 : 2;
}

}  // namespace faxflow
