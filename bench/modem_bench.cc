// modem_bench: the modem stage's SpanDSP channels against a bare SpanDSP loop, same run, same pages.
//
//   modem.cpu_per_channel.audio   CPU of one fax call through faxflow (FaxSession + sim line +
//                                 sim far end, RunFaxCall) vs a bare fax_state_t transmitter and
//                                 receiver exchanging 160-sample blocks (same TIFF, ECM, T.6,
//                                 same modems); both sides of the call counted on both sides.
//                                 target: faxflow <= 1.3 x raw (ratio, lower is better)
//   modem.cpu_per_channel.t38     the same call as T.38 (t38_terminal both ends, UDPTL pipe with
//                                 redundancy 3) vs bare t38_terminal pair (informational)
//   modem.realtime_channels       channels (each: our transmitter + its sim far end) one thread
//                                 steps in real time, one 20 ms frame (160 samples at 8 kHz)
//                                 each per tick, with no tick over 20 ms; phases staggered.
//                                 target: >= 300 (absolute, higher)
//   modem.realtime_channels.wall  the same, but a size passes only with no tick late by the wall
//                                 clock (preemption included): informational on a shared machine
//   modem.memory.idle_channel     heap bytes of a channel's transmitter session before dialling
//   modem.memory.active_channel   heap bytes of a channel mid-call (session + sim call + far end)
//   modem.memory.active_t38       the same for a T.38 call (informational)
//
// Output: one JSON line per figure on stdout; progress on stderr. CPU is the thread's CPU time
// (CLOCK_THREAD_CPUTIME_ID), so other processes on a shared machine disturb it little; the best
// of `reps` alternating runs of each side is kept.
//
// Usage: modem_bench [--quick] [--only SUBSTRING] [--no-kafka] [--reps N]
#include <malloc.h>
#include <spandsp.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/log.h"
#include "tests/modem/test_doc.h"
#include "workers/modem/fax_call.h"
#include "workers/modem/fax_session.h"
#include "workers/modem/sim_line.h"
#include "workers/modem/t38_link.h"

namespace faxflow::bench {
namespace {

using modem::kFrameSamples;

struct Options {
  bool quick = false;
  std::string only;
  int reps = 0;
};

bool Wanted(const Options& o, const std::string& name) {
  return o.only.empty() || name.find(o.only) != std::string::npos;
}

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

size_t HeapInUse() {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

void Row(const std::string& bench, double faxflow, double raw, const std::string& unit, const char* target,
         const char* better, const char* compare, const std::string& note = "") {
  std::string raw_s = "null";
  std::string ratio_s = "null";
  if (raw > 0) {
    char b[64];
    std::snprintf(b, sizeof(b), "%.6g", raw);
    raw_s = b;
    std::snprintf(b, sizeof(b), "%.4g", faxflow / raw);
    ratio_s = b;
  }
  std::printf(
      "{\"bench\":\"%s\",\"faxflow\":%.6g,\"raw\":%s,\"unit\":\"%s\",\"ratio\":%s,\"target\":%s,\"better\":"
      "\"%s\","
      "\"compare\":\"%s\"%s}\n",
      bench.c_str(), faxflow, raw_s.c_str(), unit.c_str(), ratio_s.c_str(), target, better, compare,
      note.empty() ? "" : (",\"note\":\"" + note + "\"").c_str());
  std::fflush(stdout);
}

// ---------------------------------------------------------------- bare SpanDSP loops (raw side)

struct BareResult {
  double cpu = 0;
  double line_s = 0;
  int tx_code = -1;
  int rx_code = -1;
};

struct BareDone {
  int code = -1;
  bool done = false;
};
void BarePhaseE(t30_state_t*, void* ud, int code) {
  auto* d = static_cast<BareDone*>(ud);
  d->code = code;
  d->done = true;
}

constexpr int kCompressions = static_cast<int>(T30_SUPPORT_T4_1D_COMPRESSION) |
                              static_cast<int>(T30_SUPPORT_T4_2D_COMPRESSION) |
                              static_cast<int>(T30_SUPPORT_T6_COMPRESSION);

void ConfigureBareT30(t30_state_t* t30, bool tx, const std::string& file, BareDone* done) {
  t30_set_ecm_capability(t30, 1);
  t30_set_supported_compressions(t30, kCompressions);
  t30_set_supported_modems(t30, modem::kModemAll);
  t30_set_tx_ident(t30, tx ? "faxflow bench" : "FAXFLOW SIM");
  if (tx) {
    t30_set_tx_file(t30, file.c_str(), 0, -1);
  } else {
    t30_set_rx_encoding(t30, T4_COMPRESSION_ITU_T6);
    t30_set_rx_file(t30, file.c_str(), -1);
  }
  t30_set_phase_e_handler(t30, BarePhaseE, done);
}

BareResult BareAudioCall(const std::string& tiff, const std::string& rx_path) {
  BareResult r;
  BareDone tx_done, rx_done;
  fax_state_t* a = fax_init(nullptr, 1);
  fax_state_t* b = fax_init(nullptr, 0);
  fax_set_transmit_on_idle(a, 1);
  fax_set_transmit_on_idle(b, 1);
  ConfigureBareT30(fax_get_t30_state(a), true, tiff, &tx_done);
  ConfigureBareT30(fax_get_t30_state(b), false, rx_path, &rx_done);
  std::array<int16_t, kFrameSamples> ab{}, ba{};
  const double start = ThreadCpuSeconds();
  int64_t frames = 0;
  while (!(tx_done.done && rx_done.done) && frames < 900 * 50) {
    int n = fax_tx(a, ab.data(), kFrameSamples);
    std::fill(ab.begin() + std::max(n, 0), ab.end(), int16_t{0});
    n = fax_tx(b, ba.data(), kFrameSamples);
    std::fill(ba.begin() + std::max(n, 0), ba.end(), int16_t{0});
    fax_rx(b, ab.data(), kFrameSamples);
    fax_rx(a, ba.data(), kFrameSamples);
    ++frames;
  }
  r.cpu = ThreadCpuSeconds() - start;
  r.line_s = static_cast<double>(frames) * 0.02;
  r.tx_code = tx_done.code;
  r.rx_code = rx_done.code;
  fax_free(a);
  fax_free(b);
  return r;
}

struct BarePacket {
  t38_core_state_t* peer = nullptr;
  uint16_t seq = 0;
};
int BareT38Tx(t38_core_state_t*, void* ud, const uint8_t* buf, int len, int count) {
  auto* p = static_cast<BarePacket*>(ud);
  (void)count;  // no loss: one copy is enough
  t38_core_rx_ifp_packet(p->peer, buf, len, p->seq++);
  return 0;
}

BareResult BareT38Call(const std::string& tiff, const std::string& rx_path) {
  BareResult r;
  BareDone tx_done, rx_done;
  BarePacket to_b, to_a;
  t38_terminal_state_t* a = t38_terminal_init(nullptr, 1, BareT38Tx, &to_b);
  t38_terminal_state_t* b = t38_terminal_init(nullptr, 0, BareT38Tx, &to_a);
  to_b.peer = t38_terminal_get_t38_core_state(b);
  to_a.peer = t38_terminal_get_t38_core_state(a);
  ConfigureBareT30(t38_terminal_get_t30_state(a), true, tiff, &tx_done);
  ConfigureBareT30(t38_terminal_get_t30_state(b), false, rx_path, &rx_done);
  const double start = ThreadCpuSeconds();
  int64_t frames = 0;
  while (!(tx_done.done && rx_done.done) && frames < 900 * 50) {
    t38_terminal_send_timeout(a, kFrameSamples);
    t38_terminal_send_timeout(b, kFrameSamples);
    ++frames;
  }
  r.cpu = ThreadCpuSeconds() - start;
  r.line_s = static_cast<double>(frames) * 0.02;
  r.tx_code = tx_done.code;
  r.rx_code = rx_done.code;
  t38_terminal_free(a);
  t38_terminal_free(b);
  return r;
}

// ---------------------------------------------------------------- faxflow side

struct FaxflowCall {
  double cpu = 0;
  double line_s = 0;
  int code = -1;
};

FaxflowCall FaxflowSimCall(modem::SimLineDriver& line, const std::string& number, const std::string& tiff,
                           int n, Clock& clock) {
  modem::CallRequest req;
  req.number = number;
  req.job_id = "bench_" + std::to_string(n);
  req.attempt = 1;
  modem::FaxCallOptions o;
  o.tiff_path = tiff;
  o.ident = "faxflow bench";
  const double start = ThreadCpuSeconds();
  auto r = modem::RunFaxCall(line, req, o, clock, {});
  FaxflowCall out;
  out.cpu = ThreadCpuSeconds() - start;
  if (r.ok()) {
    out.line_s = static_cast<double>(r->line_ms) / 1000.0;
    out.code = r->completion_code;
  }
  std::filesystem::remove(line.ReceivedPath(req));
  return out;
}

void BenchCpu(const Options& opt, const std::string& work, const std::string& tiff, bool t38) {
  const std::string name = t38 ? "modem.cpu_per_channel.t38" : "modem.cpu_per_channel.audio";
  if (!Wanted(opt, name)) return;
  SystemClock clock;
  auto dir = modem::SimDirectory::Create("");
  modem::SimLineOptions so;
  so.received_dir = work + "/received";
  auto line = modem::SimLineDriver::Create(so, *dir, clock);
  if (!line.ok()) {
    std::printf("{\"bench\":\"%s\",\"skipped\":\"%s\"}\n", name.c_str(), line.status().ToString().c_str());
    return;
  }
  const int reps = opt.reps > 0 ? opt.reps : (opt.quick ? 3 : 7);
  double best_ff = 1e9, best_raw = 1e9, ff_line = 0, raw_line = 0;
  for (int i = 0; i < reps; ++i) {
    const std::string rx = work + "/bare-rx.tif";
    BareResult raw = t38 ? BareT38Call(tiff, rx) : BareAudioCall(tiff, rx);
    std::filesystem::remove(rx);
    FaxflowCall ff = FaxflowSimCall(**line, t38 ? "+15550100100" : "+15550100000", tiff, i, clock);
    if (raw.tx_code != T30_ERR_OK || ff.code != T30_ERR_OK) {
      std::fprintf(stderr, "%s: call failed (raw tx %d rx %d, faxflow %d)\n", name.c_str(), raw.tx_code,
                   raw.rx_code, ff.code);
      std::printf("{\"bench\":\"%s\",\"skipped\":\"a call failed\"}\n", name.c_str());
      return;
    }
    // CPU seconds per minute of line time: the calls differ by a few frames (hang-up timing).
    best_raw = std::min(best_raw, raw.cpu / raw.line_s * 60.0);
    best_ff = std::min(best_ff, ff.cpu / ff.line_s * 60.0);
    ff_line = ff.line_s;
    raw_line = raw.line_s;
    std::fprintf(stderr, "%s rep %d: faxflow %.4f s CPU / %.1f s line, raw %.4f s CPU / %.1f s line\n",
                 name.c_str(), i, ff.cpu, ff.line_s, raw.cpu, raw.line_s);
  }
  (void)ff_line;
  (void)raw_line;
  Row(name, best_ff * 1000, best_raw * 1000, "ms CPU per line minute", t38 ? "null" : "1.3", "lower", "ratio",
      "both ends of the call");
}

// One channel stepped frame by frame: faxflow's transmitter session over the sim line.
struct SteppedChannel {
  std::unique_ptr<modem::FaxSession> session;
  std::unique_ptr<modem::Call> call;
  int calls = 0;
};

bool StartCall(SteppedChannel& ch, modem::SimLineDriver& line, const std::string& tiff,
               const std::string& number, int id) {
  modem::TxSessionOptions tx;
  tx.tiff_path = tiff;
  tx.ident = "faxflow bench";
  tx.log_tag = "bench";
  auto s = modem::FaxSession::NewTransmitter(tx);
  if (!s.ok()) return false;
  modem::CallRequest req;
  req.number = number;
  req.job_id = "ch" + std::to_string(id) + "_" + std::to_string(ch.calls++);
  auto d = line.Dial(req);
  if (!d.ok() || !d->call) return false;
  ch.session = std::move(*s);
  ch.call = std::move(d->call);
  if (auto* link = ch.call->t38()) {
    if (!ch.session->UseT38(*link).ok()) return false;
  }
  return true;
}

void Step(SteppedChannel& ch, modem::SimLineDriver& line, const std::string& tiff, const std::string& number,
          int id) {
  std::array<int16_t, kFrameSamples> txb{}, rxb{};
  ch.session->Transmit(txb);
  (void)ch.call->Exchange(txb, rxb);
  ch.session->Receive(rxb);
  if (ch.session->Finished() || ch.call->Hungup()) {
    ch.call.reset();
    ch.session.reset();
    (void)StartCall(ch, line, tiff, number, id);  // keep the channel busy
  }
}

// Grows a set of channels stepped by this thread in real time (one 20 ms tick: one frame for
// every channel) and reports, per size, the ticks whose work took more than 20 ms of this
// thread's CPU time (a dedicated core would have been late) and those late by the wall clock
// (on a shared machine also preemption by other processes).
struct TickStats {
  int cpu_late = 0;
  int wall_late = 0;
  double worst_cpu = 0;
};

TickStats RunTicks(std::vector<SteppedChannel>& chans, int ticks, modem::SimLineDriver& line,
                   const std::string& tiff, const std::string& number) {
  TickStats st;
  const auto period = std::chrono::milliseconds(20);
  auto next = std::chrono::steady_clock::now() + period;
  for (int t = 0; t < ticks; ++t) {
    std::this_thread::sleep_until(next);
    const double cpu0 = ThreadCpuSeconds();
    for (size_t i = 0; i < chans.size(); ++i) Step(chans[i], line, tiff, number, static_cast<int>(i));
    const double cpu = ThreadCpuSeconds() - cpu0;
    st.worst_cpu = std::max(st.worst_cpu, cpu);
    if (cpu > 0.020) ++st.cpu_late;
    if (std::chrono::steady_clock::now() > next + period) ++st.wall_late;
    next += period;
    if (std::chrono::steady_clock::now() > next + std::chrono::seconds(1))
      next = std::chrono::steady_clock::now();
  }
  return st;
}

// `wall`: the wall-clock variant: a size passes only if no tick ended late by the wall clock
// (the work of a tick plus any preemption by other processes over its 20 ms).
void BenchRealtime(const Options& opt, const std::string& work, const std::string& tiff, bool wall) {
  const std::string name = wall ? "modem.realtime_channels.wall" : "modem.realtime_channels";
  if (!Wanted(opt, name)) return;
  SystemClock clock;
  auto dir = modem::SimDirectory::Create("");
  modem::SimLineOptions so;
  so.received_dir = work + "/rt";
  auto line = modem::SimLineDriver::Create(so, *dir, clock);
  if (!line.ok()) return;
  const int ticks = opt.quick ? 100 : 500;  // 2 s / 10 s of real time per size
  const int step = opt.quick ? 200 : 100;
  const int max_channels = 3000;
  std::vector<SteppedChannel> chans;
  std::mt19937 rng(12345);
  std::uniform_int_distribution<int> warm(0, 1500);  // up to 30 s into a call: phases differ
  int best = 0;
  TickStats best_stats;
  // The wall variant is informational: a shorter budget.
  const int budget_s = wall ? (opt.quick ? 15 : 300) : (opt.quick ? 35 : 600);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(budget_s);
  for (int n = step; n <= max_channels && std::chrono::steady_clock::now() < deadline; n += step) {
    while (static_cast<int>(chans.size()) < n) {
      const int id = static_cast<int>(chans.size());
      chans.emplace_back();
      if (!StartCall(chans.back(), **line, tiff, "+15550100000", id)) return;
      const int w = warm(rng);
      for (int f = 0; f < w; ++f) Step(chans.back(), **line, tiff, "+15550100000", id);
    }
    TickStats st = RunTicks(chans, ticks, **line, tiff, "+15550100000");
    std::fprintf(
        stderr,
        "%s: %d channels: %d ticks over 20 ms CPU, %d late by the wall clock, of %d; worst %.2f ms CPU\n",
        name.c_str(), n, st.cpu_late, st.wall_late, ticks, st.worst_cpu * 1000);
    if (wall ? st.wall_late != 0 : st.cpu_late != 0) break;
    best = n;
    best_stats = st;
  }
  chans.clear();
  std::filesystem::remove_all(work + "/rt");
  if (wall) {
    // Informational: on a shared (loaded) machine preemption makes ticks late whatever the load.
    Row(name, best, 0, "channels", "null", "higher", "absolute",
        "one thread paced by the wall clock (20 ms ticks); largest size with no tick late by the wall "
        "clock; worst " +
            std::to_string(static_cast<int>(best_stats.worst_cpu * 1000)) + " ms CPU (shared machine)");
    return;
  }
  Row(name, best, 0, "channels", "300", "higher", "absolute",
      "one thread; channel = transmitter + its sim far end; no tick over 20 ms of thread CPU; worst " +
          std::to_string(static_cast<int>(best_stats.worst_cpu * 1000)) + " ms CPU; wall-late ticks " +
          std::to_string(best_stats.wall_late) + "/" + std::to_string(ticks) + " (shared machine)");
}

void BenchMemory(const Options& opt, const std::string& work, const std::string& tiff) {
  if (!Wanted(opt, "modem.memory")) return;
  SystemClock clock;
  auto dir = modem::SimDirectory::Create("");
  modem::SimLineOptions so;
  so.received_dir = work + "/mem";
  auto line = modem::SimLineDriver::Create(so, *dir, clock);
  if (!line.ok()) return;
  const int n = opt.quick ? 50 : 200;
  auto measure_active = [&](const std::string& number, const std::string& bench) {
    if (!Wanted(opt, bench)) return;
    const size_t before = HeapInUse();
    std::vector<SteppedChannel> chans(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      auto& ch = chans[static_cast<size_t>(i)];
      if (!StartCall(ch, **line, tiff, number, i)) return;
      for (int f = 0; f < 600; ++f) Step(ch, **line, tiff, number, i);  // 12 s: into the first page
    }
    const size_t after = HeapInUse();
    Row(bench, static_cast<double>(after - before) / n, 0, "bytes", "null", "lower", "absolute",
        "session + sim call + far end, heap (mallinfo2)");
  };
  if (Wanted(opt, "modem.memory.idle_channel")) {
    const size_t before = HeapInUse();
    std::vector<std::unique_ptr<modem::FaxSession>> idle;
    for (int i = 0; i < n; ++i) {
      modem::TxSessionOptions tx;
      tx.tiff_path = tiff;
      tx.ident = "faxflow bench";
      auto s = modem::FaxSession::NewTransmitter(tx);
      if (s.ok()) idle.push_back(std::move(*s));
    }
    const size_t after = HeapInUse();
    Row("modem.memory.idle_channel", static_cast<double>(after - before) / n, 0, "bytes", "null", "lower",
        "absolute", "transmitter session before dialling, heap (mallinfo2)");
  }
  measure_active("+15550100000", "modem.memory.active_channel");
  measure_active("+15550100100", "modem.memory.active_t38");
}

}  // namespace
}  // namespace faxflow::bench

int main(int argc, char** argv) {
  using namespace faxflow::bench;
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") {
      opt.quick = true;
    } else if (a == "--only" && i + 1 < argc) {
      opt.only = argv[++i];
    } else if (a == "--reps" && i + 1 < argc) {
      opt.reps = std::atoi(argv[++i]);
    } else if (a == "--no-kafka") {
      // no Kafka here
    } else {
      std::fprintf(stderr, "usage: modem_bench [--quick] [--only SUBSTRING] [--no-kafka] [--reps N]\n");
      return 2;
    }
  }
  faxflow::SetLogLevel("warn");
  const std::string work = faxflow::modem::testing::MakeTempDir("modem-bench");
  // The same pages for both sides: a 3-page Ghostscript-rendered fine A4 document.
  auto doc = faxflow::modem::testing::MakeTestDoc(work, 3);
  if (doc.multipage_path.empty()) {
    std::printf("{\"bench\":\"modem\",\"skipped\":\"gs could not render the test document\"}\n");
    return 0;
  }
  BenchCpu(opt, work, doc.multipage_path, false);
  BenchCpu(opt, work, doc.multipage_path, true);
  BenchMemory(opt, work, doc.multipage_path);
  BenchRealtime(opt, work, doc.multipage_path, false);
  BenchRealtime(opt, work, doc.multipage_path, true);
  std::filesystem::remove_all(work);
  return 0;
}
