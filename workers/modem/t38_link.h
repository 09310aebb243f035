// T.38 links over UDPTL (t38_udptl.h): the packet side of a T.38 call (line_driver.h T38Link).
//
// UdptlLink frames outgoing IFPs (with redundancy) and hands each datagram to a send function;
// incoming datagrams are queued with Push() by whoever owns the transport (the `t38` driver's
// socket, `faxflow sink`'s socket loop, or the in-process pipe) and decoded in order when the
// session polls ReceiveIfps(). T38Pipe joins two UdptlLinks in one process with a seeded
// packet-loss model: the sim line's T.38 far ends, tests and benchmarks.
//
// Threading: a UdptlLink belongs to its call's thread (Push from the same thread). A T38Pipe's
// two ends are driven lock-step by one thread (the sim call).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "common/status.h"
#include "workers/modem/line_driver.h"
#include "workers/modem/t38_udptl.h"

namespace faxflow::modem {

struct T38LinkOptions {
  int redundancy = 3;  // previous IFPs carried in every datagram (0..8)
  bool paced = true;   // T.38 pacing (false = T38_TERMINAL_OPTION_NO_PACING)
  // Test knob: share of our outgoing datagrams dropped before they reach the network (seeded).
  double loss_percent = 0;
  uint64_t loss_seed = 1;
};

// Deterministic datagram loss: drops each datagram with probability percent/100.
class LossModel {
 public:
  LossModel(double percent, uint64_t seed) : percent_(percent), rng_(seed) {}
  bool Drop() { return percent_ > 0 && dist_(rng_) * 100.0 < percent_; }
  uint64_t dropped() const { return dropped_; }
  bool DropAndCount() {
    const bool d = Drop();
    if (d) ++dropped_;
    return d;
  }

 private:
  double percent_;
  std::mt19937_64 rng_;
  std::uniform_real_distribution<double> dist_{0.0, 1.0};
  uint64_t dropped_ = 0;
};

class UdptlLink final : public T38Link {
 public:
  using SendFn = std::function<Status(std::span<const uint8_t> datagram)>;
  UdptlLink(const T38LinkOptions& options, SendFn send);
  Status SendIfp(std::span<const uint8_t> ifp, int count) override;
  void ReceiveIfps(const std::function<void(std::span<const uint8_t>, uint16_t)>& deliver) override;
  bool Paced() const override { return options_.paced; }
  T38CallStats Stats() const override;
  // Queues a received datagram for the next ReceiveIfps().
  void Push(std::span<const uint8_t> datagram);
  const UdptlStats& rx_stats() const { return decoder_.stats(); }
  uint64_t datagrams_sent() const { return sent_; }

 private:
  T38LinkOptions options_;
  SendFn send_;
  UdptlEncoder encoder_;
  UdptlDecoder decoder_;
  std::deque<std::vector<uint8_t>> inbox_;
  uint64_t sent_ = 0;
  LossModel loss_;

 public:
  uint64_t dropped() const { return loss_.dropped(); }
};

// Two UdptlLinks joined in memory; each direction loses `loss_percent` of its datagrams.
class T38Pipe {
 public:
  T38Pipe(const T38LinkOptions& options, double loss_percent, uint64_t seed);
  UdptlLink& caller() { return *caller_; }
  UdptlLink& answerer() { return *answerer_; }
  uint64_t dropped() const { return to_answerer_loss_.dropped() + to_caller_loss_.dropped(); }

 private:
  LossModel to_answerer_loss_;
  LossModel to_caller_loss_;
  std::unique_ptr<UdptlLink> caller_;
  std::unique_ptr<UdptlLink> answerer_;
};

}  // namespace faxflow::modem
