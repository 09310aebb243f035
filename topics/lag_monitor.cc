#include "topics/lag_monitor.h"

#include "common/log.h"

namespace faxflow::bus {

LagMonitor::LagMonitor(Bus& bus, std::vector<Watch> watches, prometheus::Registry& registry,
                       std::chrono::milliseconds interval)
    : bus_(bus),
      watches_(std::move(watches)),
      family_(prometheus::BuildGauge()
                  .Name("faxflow_bus_queue_depth")
                  .Help("Records produced to a topic and not yet committed by a consumer group (records).")
                  .Register(registry)),
      committed_family_(prometheus::BuildGauge()
                            .Name("faxflow_bus_committed_offset")
                            .Help("Sum over partitions of the offsets a consumer group committed on a topic "
                                  "(records); grows while the group makes progress.")
                            .Register(registry)),
      lag_family_(
          prometheus::BuildGauge()
              .Name("faxflow_bus_consumer_lag")
              .Help("Records a consumer group has still to commit on a topic, as its consumers in this "
                    "process measure it: from librdkafka statistics on Kafka (partitions assigned "
                    "here; kafka.statistics.interval.ms), end minus committed offset otherwise.")
              .Register(registry)),
      interval_(interval) {
  for (const auto& w : watches_) gauges_.push_back(&family_.Add({{"topic", w.topic}, {"group", w.group}}));
  for (const auto& w : watches_)
    committed_.push_back(&committed_family_.Add({{"topic", w.topic}, {"group", w.group}}));
  for (const auto& w : watches_) lags_.push_back(&lag_family_.Add({{"topic", w.topic}, {"group", w.group}}));
}

LagMonitor::~LagMonitor() { Stop(); }

Status LagMonitor::Start() {
  for (const auto& w : watches_) {
    // read_uncommitted: it only reads committed offsets and end offsets (high watermark, so
    // transaction markers count as depth until the group commits past them).
    FF_ASSIGN_OR_RETURN(auto c, bus_.NewConsumer({w.group, "lag-monitor", false}));
    consumers_.push_back(std::move(c));
  }
  // Refreshes run on the monitor's thread only: on Kafka, committed offsets are admin calls that
  // can take seconds while a fresh broker loads its group coordinator; start-up never waits.
  thread_ = std::thread([this] {
    auto log = Logger("bus");
    auto beat = RegisterHeartbeat(heartbeats_, "lag_monitor", 2 * interval_);
    std::unique_lock lock(mu_);
    bool first = true;
    while (!stop_) {
      beat->Beat();
      if (!first) cv_.wait_for(lock, interval_, [this] { return stop_; });
      first = false;
      if (stop_) break;
      lock.unlock();
      auto r = Refresh();
      if (!r.ok()) FF_LOG_DEBUG(log, "queue depth refresh failed: {}", r.status().ToString());
      lock.lock();
    }
  });
  return Status::Ok();
}

void LagMonitor::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

Result<std::vector<int64_t>> LagMonitor::Refresh() {
  std::vector<int64_t> depths;
  for (size_t i = 0; i < watches_.size() && i < consumers_.size(); ++i) {
    FF_ASSIGN_OR_RETURN(auto parts, AllPartitions(bus_, watches_[i].topic));
    int64_t depth = 0;
    int64_t position = 0;
    for (const auto& tp : parts) {
      FF_ASSIGN_OR_RETURN(int64_t end, consumers_[i]->EndOffset(tp));
      FF_ASSIGN_OR_RETURN(auto committed, consumers_[i]->Committed(tp));
      depth += std::max<int64_t>(0, end - committed.value_or(0));
      position += committed.value_or(0);
    }
    gauges_[i]->Set(static_cast<double>(depth));
    committed_[i]->Set(static_cast<double>(position));
    const std::optional<int64_t> reported = bus_.ReportedConsumerLag(watches_[i].topic, watches_[i].group);
    lags_[i]->Set(static_cast<double>(reported.value_or(depth)));
    depths.push_back(depth);
  }
  return depths;
}

}  // namespace faxflow::bus
