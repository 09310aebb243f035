#include "app/loadgen.h"

#include <httplib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <vector>

#include "app/pipeline.h"
#include "common/config.h"
#include "pages/pages.h"
#include "schemas/event.pb.h"
#include "schemas/job.pb.h"
#include "schemas/submission.pb.h"
#include "topics/catalogue.h"

namespace faxflow::loadgen {
namespace {

using Steady = std::chrono::steady_clock;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// value=weight,value=weight
struct Mix {
  std::vector<std::string> values;
  std::vector<double> weights;
  std::string Pick(std::mt19937& rng) const {
    std::discrete_distribution<size_t> d(weights.begin(), weights.end());
    return values[d(rng)];
  }
};

Result<Mix> ParseMix(const std::string& text, const std::string& what) {
  Mix mix;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    const auto eq = item.rfind('=');
    std::string value = item;
    double weight = 1;
    if (eq != std::string::npos) {
      value = item.substr(0, eq);
      try {
        weight = std::stod(item.substr(eq + 1));
      } catch (const std::exception&) {
        return Status::Permanent(Code::kInvalidArgument, what + ": bad weight in '" + item + "'");
      }
    }
    if (weight < 0)
      return Status::Permanent(Code::kInvalidArgument, what + ": negative weight in '" + item + "'");
    mix.values.push_back(value);
    mix.weights.push_back(weight);
  }
  if (mix.values.empty()) return Status::Permanent(Code::kInvalidArgument, what + ": empty mix");
  return mix;
}

// Built-in sim numbers (docs/sim.md). `answer` uses distinct numbers of the same fictional range.
Result<std::string> NumberFor(const std::string& behaviour) {
  static const std::map<std::string, std::string> kNumbers = {
      {"busy", "+15550100001"},    {"no_answer", "+15550100002"},    {"voice", "+15550100003"},
      {"silence", "+15550100004"}, {"drop_after:2", "+15550100005"}, {"drop_after:1", "+15550100006"}};
  auto it = kNumbers.find(behaviour);
  if (it != kNumbers.end()) return it->second;
  if (behaviour == "answer") return std::string();
  return Status::Permanent(Code::kInvalidArgument,
                           "--far-end: unknown behaviour '" + behaviour +
                               "' (answer, busy, no_answer, voice, silence, drop_after:1, drop_after:2)");
}

std::string PostScript(int pages, long seq) {
  std::ostringstream out;
  out << "%!PS-Adobe-3.0\n%%Pages: " << pages << "\n";
  for (int p = 1; p <= pages; ++p) {
    out << "%%Page: " << p << " " << p
        << "\n/Helvetica-Bold findfont 48 scalefont setfont 72 680 moveto (loadgen fax " << seq << ", page "
        << p << " of " << pages << ") show\n/Helvetica findfont 12 scalefont setfont\n";
    for (int line = 0; line < 40; ++line) {
      out << "72 " << (640 - line * 14) << " moveto (Line " << line + 1
          << ": a typical business letter line of text, about seventy characters wide.) show\n";
    }
    out << "showpage\n";
  }
  out << "%%EOF\n";
  return out.str();
}

std::string Base64(std::string_view in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                       static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < in.size()) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<uint8_t>(in[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool IsTerminal(const std::string& state) {
  return state == "delivered" || state == "partial" || state == "failed" || state == "cancelled" ||
         state == "expired";
}

std::string StateName(int state) {
  switch (state) {
    case v1::STATE_DELIVERED:
      return "delivered";
    case v1::STATE_PARTIAL:
      return "partial";
    case v1::STATE_FAILED:
      return "failed";
    case v1::STATE_CANCELLED:
      return "cancelled";
    case v1::STATE_EXPIRED:
      return "expired";
    default:
      return "other";
  }
}

struct RcpTrack {
  int64_t rendered_ms = 0;
  int64_t queued_ms = 0;
  int64_t dial_ms = 0;
  int64_t terminal_ms = 0;
  std::string state;
  int pages_sent = 0;
};

struct FaxTrack {
  int64_t submit_ms = 0;    // request started (0: not ours, or not yet known)
  int64_t accepted_ms = 0;  // 202 received / Submission seen on fax.submissions (ingest)
  int pages = 0;
  int expected_recipients = 0;
  int64_t rendered_ms = 0;
  double render_seconds = 0;
  std::map<std::string, RcpTrack> rcps;  // by recipient id
  int TerminalCount() const {
    int n = 0;
    for (const auto& [id, r] : rcps) n += r.terminal_ms > 0 ? 1 : 0;
    return n;
  }
  bool Done() const { return expected_recipients > 0 && TerminalCount() >= expected_recipients; }
};

// Shared state of one run. Guarded by mu.
struct RunState {
  std::mutex mu;
  std::unordered_map<std::string, FaxTrack> faxes;           // by fax id
  std::unordered_map<std::string, std::string> tag_to_fax;   // ingest: tag -> fax id
  std::unordered_map<std::string, FaxTrack> pending_by_tag;  // ingest: sent, fax id not yet known
  std::vector<std::string> ours;                             // fax ids we submitted, in order
  std::map<std::string, long> rejected;                      // "status code" -> count
  std::vector<std::string> first_errors;
  std::atomic<long> submitted{0};
  std::atomic<long> accepted{0};
  std::atomic<long> errors{0};
  std::atomic<bool> submitting_done{false};
  std::atomic<bool> stop{false};
  int64_t start_ms = 0;
  int64_t last_submit_end_ms = 0;
  double max_behind_schedule_s = 0;
};

void AddError(RunState& run, const std::string& what) {
  run.errors++;
  std::lock_guard lock(run.mu);
  if (run.first_errors.size() < 5) run.first_errors.push_back(what);
}

// Applies one record from the bus (bus events mode).
void ApplyRecord(RunState& run, const bus::Record& r, int64_t seen_ms) {
  const std::string_view topic = r.topic;
  std::lock_guard lock(run.mu);
  if (topic == bus::topic::kSubmissions) {
    v1::Submission s;
    if (!s.ParseFromString(r.value)) return;
    for (const auto& tag : s.options().tags()) {
      auto it = run.pending_by_tag.find(tag);
      if (it == run.pending_by_tag.end()) continue;
      FaxTrack& f = run.faxes[s.fax_id()];
      const auto rcps = std::move(f.rcps);
      f = std::move(it->second);
      f.rcps.insert(rcps.begin(), rcps.end());
      f.accepted_ms = s.submitted_at_ms() > 0 ? s.submitted_at_ms() : seen_ms;
      run.pending_by_tag.erase(it);
      run.tag_to_fax[tag] = s.fax_id();
      run.ours.push_back(s.fax_id());
      run.accepted++;
    }
  } else if (topic == bus::topic::kJobs) {
    v1::OutboundJob job;
    if (!job.ParseFromString(r.value)) return;
    auto& rcp = run.faxes[job.fax_id()].rcps[job.job_id()];
    if (rcp.queued_ms == 0) rcp.queued_ms = seen_ms;
  } else if (topic == bus::topic::kEvents) {
    v1::DeliveryEvent e;
    if (!e.ParseFromString(r.value)) return;
    FaxTrack& f = run.faxes[e.fax_id()];
    if (e.has_rendered()) {
      if (f.rendered_ms == 0) f.rendered_ms = e.at_ms();
      f.render_seconds = e.rendered().render_seconds();
      return;
    }
    if (e.recipient_id().empty()) return;
    RcpTrack& rcp = f.rcps[e.recipient_id()];
    if (e.has_attempt_started()) {
      if (rcp.dial_ms == 0 || e.at_ms() < rcp.dial_ms) rcp.dial_ms = e.at_ms();
    } else if (e.has_result() && e.result().terminal() && rcp.terminal_ms == 0) {
      rcp.terminal_ms = e.at_ms();
      rcp.state = StateName(e.result().state());
      rcp.pages_sent = e.result().pages_sent();
    }
  }
}

class BusReader {
 public:
  explicit BusReader(RunState& run) : run_(run) {}
  ~BusReader() { Stop(); }

  Status Start(bus::Bus& b) {
    const std::string group = "faxflow-loadgen-" + std::to_string(NowMs()) + "-" + std::to_string(::getpid());
    FF_ASSIGN_OR_RETURN(consumer_, b.NewConsumer({group, group, true}));
    std::vector<bus::TopicPartition> tps;
    for (auto t : {bus::topic::kSubmissions, bus::topic::kJobs, bus::topic::kEvents}) {
      FF_ASSIGN_OR_RETURN(int32_t n, b.PartitionCount(std::string(t)));
      for (int32_t p = 0; p < n; ++p) tps.push_back({std::string(t), p});
    }
    FF_RETURN_IF_ERROR(consumer_->Assign(tps));
    for (const auto& tp : tps) {
      FF_ASSIGN_OR_RETURN(int64_t end, consumer_->EndOffset(tp));
      // Kafka refuses a seek until the assignment is active (_STATE): retry for up to 10 s.
      Status seek = consumer_->Seek(tp, end);
      for (int i = 0; !seek.ok() && i < 100; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));  // assignment becoming active
        seek = consumer_->Seek(tp, end);
      }
      FF_RETURN_IF_ERROR(seek);
    }
    thread_ = std::thread([this] { Loop(); });
    return Status::Ok();
  }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    while (!stop_) {
      auto records = consumer_->Poll(std::chrono::milliseconds(100), 1000);
      if (!records.ok()) {
        AddError(run_, "reading the bus: " + records.status().ToString());
        std::this_thread::sleep_for(std::chrono::milliseconds(200));  // back off after a read error
        continue;
      }
      const int64_t seen = NowMs();
      for (const auto& r : *records) ApplyRecord(run_, r, seen);
    }
  }
  RunState& run_;
  std::unique_ptr<bus::Consumer> consumer_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

void SetAuth(httplib::Client& client, const std::string& api_key) {
  if (api_key.empty()) return;
  client.set_default_headers({{"Authorization", "Bearer " + api_key}, {"X-API-Key", api_key}});
}

// Polls GET /v1/faxes/{id} of every unfinished fax (poll events mode).
class Poller {
 public:
  Poller(RunState& run, const Options& options) : run_(run), options_(options) {}
  ~Poller() { Stop(); }
  void Start() {
    thread_ = std::thread([this] { Loop(); });
  }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    httplib::Client client(options_.server);
    client.set_read_timeout(std::chrono::seconds(10));
    SetAuth(client, options_.api_key);
    const auto interval = std::chrono::duration<double>(options_.poll_interval_seconds);
    while (!stop_) {
      const auto round_start = Steady::now();
      std::vector<std::string> pending;
      {
        std::lock_guard lock(run_.mu);
        for (const auto& id : run_.ours) {
          if (!run_.faxes[id].Done()) pending.push_back(id);
        }
      }
      for (const auto& id : pending) {
        if (stop_) return;
        auto res = client.Get(("/v1/faxes/" + id).c_str());
        const int64_t seen = NowMs();
        if (!res || res->status != 200) continue;  // not visible yet (status store lags) or transient
        auto j = nlohmann::json::parse(res->body, nullptr, false);
        if (j.is_discarded() || !j.contains("recipients")) continue;
        std::lock_guard lock(run_.mu);
        FaxTrack& f = run_.faxes[id];
        for (const auto& r : j["recipients"]) {
          const std::string rid = r.value("id", "");
          const std::string state = r.value("state", "");
          RcpTrack& rcp = f.rcps[rid];
          const bool terminal = IsTerminal(state);
          if (rcp.rendered_ms == 0 &&
              (state == "rendered" || state == "sending" || (terminal && j.value("pages", 0) > 0)))
            rcp.rendered_ms = seen;
          if (rcp.dial_ms == 0 && (state == "sending" || r.value("attempts", 0) > 0)) rcp.dial_ms = seen;
          if (terminal && rcp.terminal_ms == 0) {
            const int64_t updated = r.value("updated_at_ms", int64_t{0});
            rcp.terminal_ms = updated > 0 ? updated : seen;
            rcp.state = state;
            rcp.pages_sent = r.value("pages_sent", 0);
          }
        }
        if (f.rendered_ms == 0 && j.value("pages", 0) > 0) f.rendered_ms = seen;
      }
      const auto spent = Steady::now() - round_start;
      if (spent < interval) std::this_thread::sleep_for(interval - spent);
    }
  }
  RunState& run_;
  const Options& options_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct Stats {
  size_t n = 0;
  double p50 = 0, p99 = 0, max = 0;
};

Stats Summarise(std::vector<double> v) {
  Stats s;
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto rank = [&](double q) {
    size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
    return v[std::min(v.size() - 1, i == 0 ? 0 : i - 1)];
  };
  s.p50 = rank(0.50);
  s.p99 = rank(0.99);
  s.max = v.back();
  return s;
}

}  // namespace

int Run(const Options& options) {
  auto pages_mix = ParseMix(options.pages, "--pages");
  auto rcp_mix = ParseMix(options.recipients, "--recipients");
  auto far_mix = ParseMix(options.far_end, "--far-end");
  for (const auto* m : {&pages_mix, &rcp_mix, &far_mix}) {
    if (!m->ok()) {
      std::cerr << "faxflow loadgen: " << m->status().message() << "\n";
      return 1;
    }
  }
  for (const auto& b : far_mix->values) {
    if (auto n = NumberFor(b); !n.ok()) {
      std::cerr << "faxflow loadgen: " << n.status().message() << "\n";
      return 1;
    }
  }
  if (options.count <= 0 && options.duration_seconds <= 0) {
    std::cerr << "faxflow loadgen: give --count or --duration\n";
    return 1;
  }
  if (options.via != "rest" && options.via != "ingest") {
    std::cerr << "faxflow loadgen: --via is rest or ingest\n";
    return 1;
  }
  const std::string events =
      options.events.empty() ? (options.kafka.empty() ? "poll" : "bus") : options.events;
  if ((events == "bus" || options.via == "ingest") && options.kafka.empty()) {
    std::cerr
        << "faxflow loadgen: --events bus and --via ingest need --kafka BOOTSTRAP (the embedded bus lives "
           "inside the `faxflow all` process; use --events poll there)\n";
    return 1;
  }
  if (events != "bus" && events != "poll") {
    std::cerr << "faxflow loadgen: --events is bus or poll\n";
    return 1;
  }

  // Documents of each page count.
  std::string tiff_page;
  std::map<int, std::string> tiffs;
  if (options.doc_kind == "tiff") {
    std::ifstream in(options.tiff_page, std::ios::binary);
    if (!in) {
      std::cerr << "faxflow loadgen: cannot read " << options.tiff_page << " (--tiff-page)\n";
      return 1;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    tiff_page = ss.str();
    for (const auto& v : pages_mix->values) {
      const int n = std::stoi(v);
      auto joined = pages::JoinPages(std::vector<std::string>(static_cast<size_t>(n), tiff_page));
      if (!joined.ok()) {
        std::cerr << "faxflow loadgen: " << options.tiff_page << ": " << joined.status().ToString() << "\n";
        return 1;
      }
      tiffs[n] = *joined;
    }
  } else if (options.doc_kind != "ps") {
    std::cerr << "faxflow loadgen: --doc-kind is ps or tiff\n";
    return 1;
  }

  // The bus, when events or submissions go through it.
  std::unique_ptr<bus::Bus> the_bus;
  std::unique_ptr<bus::Producer> ingest_producer;
  if (!options.kafka.empty()) {
    auto config = LoadConfig(std::nullopt, {{"bus.backend", "kafka"}, {"kafka.bootstrap", options.kafka}});
    if (!config.ok()) {
      std::cerr << "faxflow loadgen: " << config.status().ToString() << "\n";
      return 1;
    }
    auto opened = OpenConfiguredBus(*config, nullptr);
    if (!opened.ok()) {
      std::cerr << "faxflow loadgen: cannot open the bus at " << options.kafka << ": "
                << opened.status().ToString() << "\n";
      return 1;
    }
    the_bus = std::move(*opened);
    if (options.via == "ingest") {
      auto p = the_bus->NewProducer("faxflow-loadgen");
      if (!p.ok()) {
        std::cerr << "faxflow loadgen: " << p.status().ToString() << "\n";
        return 1;
      }
      ingest_producer = std::move(*p);
    }
  }

  RunState run;
  run.start_ms = NowMs();
  BusReader reader(run);
  Poller poller(run, options);
  if (events == "bus") {
    if (Status s = reader.Start(*the_bus); !s.ok()) {
      std::cerr << "faxflow loadgen: cannot read events: " << s.ToString() << "\n";
      return 1;
    }
  } else {
    poller.Start();
  }

  const auto t0 = Steady::now();
  const auto submit_deadline = options.duration_seconds > 0
                                   ? t0 + std::chrono::duration_cast<Steady::duration>(
                                              std::chrono::duration<double>(options.duration_seconds))
                                   : Steady::time_point::max();
  std::atomic<long> next_seq{0};
  const std::string run_tag = "loadgen-" + std::to_string(run.start_ms);

  auto sender = [&](int worker) {
    std::mt19937 rng(options.seed * 7919u + static_cast<unsigned>(worker));
    httplib::Client client(options.server);
    client.set_read_timeout(std::chrono::seconds(120));
    client.set_write_timeout(std::chrono::seconds(120));
    client.set_keep_alive(true);
    SetAuth(client, options.api_key);
    std::uniform_int_distribution<int> answer_line(100, 9999);
    while (!run.stop) {
      const long seq = next_seq++;
      if (options.count > 0 && seq >= options.count) break;
      Steady::time_point when = Steady::now();
      if (options.rate > 0) {
        when = t0 + std::chrono::duration_cast<Steady::duration>(
                        std::chrono::duration<double>(static_cast<double>(seq) / options.rate));
        if (when >= submit_deadline) break;
        std::this_thread::sleep_until(when);  // pacing to the requested rate
        const double behind = std::chrono::duration<double>(Steady::now() - when).count();
        std::lock_guard lock(run.mu);
        run.max_behind_schedule_s = std::max(run.max_behind_schedule_s, behind);
      } else if (Steady::now() >= submit_deadline) {
        break;
      }
      // What to send.
      const int pages = std::stoi(pages_mix->Pick(rng));
      const int n_rcp = std::max(1, std::stoi(rcp_mix->Pick(rng)));
      std::vector<std::string> numbers;
      std::set<std::string> used;
      for (int i = 0; i < n_rcp; ++i) {
        std::string number = *NumberFor(far_mix->Pick(rng));
        while (number.empty() || used.count(number)) {
          char buf[32];
          std::snprintf(buf, sizeof buf, "+1555010%04d", answer_line(rng));
          number = buf;
        }
        used.insert(number);
        numbers.push_back(number);
      }
      const std::string doc = options.doc_kind == "tiff" ? tiffs[pages] : PostScript(pages, seq);
      const std::string tag = run_tag + "-" + std::to_string(seq);
      FaxTrack track;
      track.pages = pages;
      track.expected_recipients = n_rcp;
      track.submit_ms = NowMs();
      run.submitted++;
      if (options.via == "rest") {
        httplib::MultipartFormDataItems items;
        items.push_back(
            {"file", doc, options.doc_kind == "tiff" ? "doc.tif" : "doc.ps", "application/octet-stream"});
        for (const auto& n : numbers) items.push_back({"to", n, "", ""});
        items.push_back(
            {"options", nlohmann::json{{"tags", {"loadgen", tag}}}.dump(), "", "application/json"});
        auto res = client.Post("/v1/faxes", items);
        if (!res) {
          AddError(run, "POST /v1/faxes: " + httplib::to_string(res.error()));
          continue;
        }
        if (res->status != 202) {
          std::lock_guard lock(run.mu);
          run.rejected[std::to_string(res->status)]++;
          if (run.first_errors.size() < 5)
            run.first_errors.push_back(std::to_string(res->status) + " " + res->body);
          continue;
        }
        auto j = nlohmann::json::parse(res->body, nullptr, false);
        if (j.is_discarded() || !j.contains("id")) {
          AddError(run, "unparsable 202 body: " + res->body.substr(0, 200));
          continue;
        }
        const int64_t accepted = NowMs();
        std::lock_guard lock(run.mu);
        FaxTrack& f = run.faxes[j["id"].get<std::string>()];
        auto seen = std::move(f.rcps);
        f = std::move(track);
        f.accepted_ms = accepted;
        for (const auto& r : j.value("recipients", nlohmann::json::array())) f.rcps[r.value("id", "")];
        for (auto& [id, r] : seen) f.rcps[id] = r;  // events that arrived before the 202
        run.ours.push_back(j["id"].get<std::string>());
        run.last_submit_end_ms = std::max(run.last_submit_end_ms, accepted);
        run.accepted++;
      } else {
        nlohmann::json rec = {{"id", tag},
                              {"to", numbers},
                              {"documents", {{{"content_base64", Base64(doc)}, {"filename", "doc"}}}},
                              {"options", {{"tags", {"loadgen", tag}}}}};
        {
          std::lock_guard lock(run.mu);
          run.pending_by_tag[tag] = track;
        }
        bus::Message message;
        message.topic = std::string(bus::topic::kIngest);
        message.key = tag;
        message.value = rec.dump();
        auto produced = ingest_producer->Produce(message);
        if (!produced.ok()) {
          AddError(run, "producing to fax.ingest: " + produced.status().ToString());
          std::lock_guard lock(run.mu);
          run.pending_by_tag.erase(tag);
          continue;
        }
        std::lock_guard lock(run.mu);
        run.last_submit_end_ms = std::max(run.last_submit_end_ms, NowMs());
      }
    }
  };

  // Progress on stderr, once a second.
  std::atomic<bool> progress_stop{false};
  auto counts = [&](long& rendered, long& queued, long& dialled, long& terminal, long& recipients) {
    rendered = queued = dialled = terminal = recipients = 0;
    std::lock_guard lock(run.mu);
    for (const auto& id : run.ours) {
      const FaxTrack& f = run.faxes[id];
      recipients += f.expected_recipients;
      if (f.rendered_ms > 0) rendered++;
      for (const auto& [rid, r] : f.rcps) {
        queued += r.queued_ms > 0;
        dialled += r.dial_ms > 0;
        terminal += r.terminal_ms > 0;
      }
    }
  };
  std::thread progress([&] {
    while (!progress_stop) {
      for (int i = 0; i < 10 && !progress_stop; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      long rendered, queued, dialled, terminal, recipients;
      counts(rendered, queued, dialled, terminal, recipients);
      long rejected = 0;
      {
        std::lock_guard lock(run.mu);
        for (const auto& [k, v] : run.rejected) rejected += v;
      }
      std::fprintf(
          stderr,
          "loadgen %6.1f s  submitted %ld  accepted %ld  rejected %ld  errors %ld | faxes rendered %ld | "
          "recipients %ld: queued %ld  dialled %ld  terminal %ld%s\n",
          std::chrono::duration<double>(Steady::now() - t0).count(), run.submitted.load(),
          run.accepted.load(), rejected, run.errors.load(), rendered, recipients, queued, dialled, terminal,
          run.submitting_done ? "  (draining)" : "");
    }
  });

  std::vector<std::thread> senders;
  for (int i = 0; i < std::max(1, options.concurrency); ++i) senders.emplace_back(sender, i);
  for (auto& t : senders) t.join();
  run.submitting_done = true;
  const double submit_seconds = std::chrono::duration<double>(Steady::now() - t0).count();

  // Drain: wait until every accepted fax is terminal, or the timeout.
  const auto drain_deadline =
      Steady::now() + std::chrono::duration_cast<Steady::duration>(
                          std::chrono::duration<double>(options.drain_timeout_seconds));
  while (Steady::now() < drain_deadline) {
    bool all_done = true;
    {
      std::lock_guard lock(run.mu);
      if (!run.pending_by_tag.empty()) all_done = false;
      for (const auto& id : run.ours) {
        if (!run.faxes[id].Done()) {
          all_done = false;
          break;
        }
      }
    }
    if (all_done) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // drain check interval
  }
  reader.Stop();
  poller.Stop();
  progress_stop = true;
  progress.join();
  const double total_seconds = std::chrono::duration<double>(Steady::now() - t0).count();

  // Report.
  std::lock_guard lock(run.mu);
  std::vector<double> accepted_ms, rendered_ms, queued_ms, dial_ms, terminal_ms, render_s;
  std::map<std::string, long> states;
  long recipients = 0, terminal = 0, pages_delivered = 0, pages_submitted = 0;
  int64_t first_submit = 0, last_terminal = 0;
  for (const auto& id : run.ours) {
    const FaxTrack& f = run.faxes[id];
    if (first_submit == 0 || f.submit_ms < first_submit) first_submit = f.submit_ms;
    recipients += f.expected_recipients;
    pages_submitted += static_cast<long>(f.pages) * f.expected_recipients;
    if (f.accepted_ms > 0) accepted_ms.push_back(static_cast<double>(f.accepted_ms - f.submit_ms));
    int64_t fax_rendered = f.rendered_ms;
    for (const auto& [rid, r] : f.rcps) {
      if (fax_rendered == 0 && r.rendered_ms > 0) fax_rendered = r.rendered_ms;
    }
    if (fax_rendered > 0) rendered_ms.push_back(static_cast<double>(fax_rendered - f.submit_ms));
    if (f.render_seconds > 0) render_s.push_back(f.render_seconds * 1000);
    for (const auto& [rid, r] : f.rcps) {
      if (r.queued_ms > 0) queued_ms.push_back(static_cast<double>(r.queued_ms - f.submit_ms));
      if (r.dial_ms > 0) dial_ms.push_back(static_cast<double>(r.dial_ms - f.submit_ms));
      if (r.terminal_ms > 0) {
        terminal++;
        terminal_ms.push_back(static_cast<double>(r.terminal_ms - f.submit_ms));
        states[r.state]++;
        if (r.state == "delivered" || r.state == "partial")
          pages_delivered += r.pages_sent > 0 ? r.pages_sent : 0;
        last_terminal = std::max(last_terminal, r.terminal_ms);
      }
    }
  }
  long rejected = 0;
  for (const auto& [k, v] : run.rejected) rejected += v;
  const long unfinished = recipients - terminal + static_cast<long>(run.pending_by_tag.size());
  const double terminal_window = last_terminal > first_submit ? (last_terminal - first_submit) / 1000.0 : 0;
  const double accept_window = run.last_submit_end_ms > first_submit
                                   ? (run.last_submit_end_ms - first_submit) / 1000.0
                                   : submit_seconds;

  struct Stage {
    const char* name;
    const char* meaning;
    Stats s;
  };
  const std::vector<Stage> stages = {
      {"accepted", options.via == "rest" ? "202 received" : "Submission on fax.submissions",
       Summarise(accepted_ms)},
      {"rendered", events == "bus" ? "Rendered event" : "first poll showing pages", Summarise(rendered_ms)},
      {"queued", events == "bus" ? "job read from fax.jobs (read_committed)" : "not observable by polling",
       Summarise(queued_ms)},
      {"first_dial", events == "bus" ? "AttemptStarted event" : "first poll showing an attempt",
       Summarise(dial_ms)},
      {"terminal", events == "bus" ? "terminal AttemptResult event" : "status updated_at_ms",
       Summarise(terminal_ms)},
  };
  const Stats render = Summarise(render_s);

  nlohmann::json report = {
      {"via", options.via},
      {"events", events},
      {"target_rate", options.rate},
      {"submitted", run.submitted.load()},
      {"accepted", run.accepted.load()},
      {"rejected", rejected},
      {"errors", run.errors.load()},
      {"recipients", recipients},
      {"terminal", terminal},
      {"unfinished", unfinished},
      {"states", states},
      {"pages_submitted", pages_submitted},
      {"pages_delivered", pages_delivered},
      {"submit_seconds", submit_seconds},
      {"total_seconds", total_seconds},
      {"max_behind_schedule_s", run.max_behind_schedule_s},
      {"throughput",
       {{"accepted_faxes_per_s",
         accept_window > 0 ? static_cast<double>(run.accepted.load()) / accept_window : 0},
        {"terminal_recipients_per_s",
         terminal_window > 0 ? static_cast<double>(terminal) / terminal_window : 0},
        {"pages_delivered_per_s",
         terminal_window > 0 ? static_cast<double>(pages_delivered) / terminal_window : 0}}},
      {"first_errors", run.first_errors},
  };
  for (const auto& st : stages) {
    report["stages"][st.name] = {{"n", st.s.n},
                                 {"p50_ms", st.s.p50},
                                 {"p99_ms", st.s.p99},
                                 {"max_ms", st.s.max},
                                 {"measured_at", st.meaning}};
  }
  if (render.n > 0)
    report["render_ms"] = {
        {"n", render.n}, {"p50_ms", render.p50}, {"p99_ms", render.p99}, {"max_ms", render.max}};
  if (options.json) {
    std::cout << report.dump() << std::endl;
  } else {
    std::printf("faxflow loadgen: %ld faxes submitted via %s in %.1f s (target rate %s), events from %s\n",
                run.submitted.load(), options.via.c_str(), submit_seconds,
                options.rate > 0 ? (std::to_string(options.rate) + "/s").c_str() : "as fast as possible",
                events.c_str());
    std::printf("  accepted %ld  rejected %ld  errors %ld\n", run.accepted.load(), rejected,
                run.errors.load());
    std::printf("  recipients %ld: terminal %ld", recipients, terminal);
    for (const auto& [k, v] : states) std::printf(", %s %ld", k.c_str(), v);
    std::printf(", unfinished %ld\n", unfinished);
    std::printf("  throughput: %.1f faxes/s accepted, %.1f recipients/s terminal, %.1f pages/s delivered\n",
                report["throughput"]["accepted_faxes_per_s"].get<double>(),
                report["throughput"]["terminal_recipients_per_s"].get<double>(),
                report["throughput"]["pages_delivered_per_s"].get<double>());
    std::printf("\n  %-11s %6s %10s %10s %10s  %s\n", "stage", "n", "p50 ms", "p99 ms", "max ms",
                "measured at (from the start of the submission)");
    for (const auto& st : stages) {
      std::printf("  %-11s %6zu %10.0f %10.0f %10.0f  %s\n", st.name, st.s.n, st.s.p50, st.s.p99, st.s.max,
                  st.meaning);
    }
    if (render.n > 0)
      std::printf("  %-11s %6zu %10.0f %10.0f %10.0f  render_seconds of the Rendered events\n", "(render)",
                  render.n, render.p50, render.p99, render.max);
    for (const auto& e : run.first_errors) std::printf("  error: %s\n", e.c_str());
  }
  return (rejected == 0 && run.errors == 0 && unfinished == 0) ? 0 : 3;
}

}  // namespace faxflow::loadgen
