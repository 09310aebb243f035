#include "workers/status/status_worker.h"

#include <map>
#include <utility>

#include "common/log.h"
#include "schemas/event.pb.h"
#include "schemas/submission.pb.h"
#include "topics/dead_letter.h"

namespace faxflow {

StatusWorkerMetrics::StatusWorkerMetrics(prometheus::Registry& registry)
    : applied(prometheus::BuildCounter()
                  .Name("faxflow_status_records_applied_total")
                  .Help("Submissions and delivery events applied to the status store.")
                  .Register(registry)
                  .Add({})),
      dead_letters(prometheus::BuildCounter()
                       .Name("faxflow_status_dead_letters_total")
                       .Help("Records the status worker could not decode, sent to fax.dlq.")
                       .Register(registry)
                       .Add({})),
      errors(prometheus::BuildCounter()
                 .Name("faxflow_status_errors_total")
                 .Help("Store or bus errors of the status worker (the batch is retried).")
                 .Register(registry)
                 .Add({})) {}

StatusWorker::StatusWorker(bus::Bus& bus, StatusStore& store, prometheus::Registry& registry, Clock& clock,
                           std::string group)
    : bus_(bus), store_(store), clock_(clock), group_(std::move(group)), metrics_(registry) {}

StatusWorker::~StatusWorker() { Stop(); }

Status StatusWorker::Start() {
  FF_ASSIGN_OR_RETURN(consumer_, bus_.NewConsumer({group_, "status", true}));
  FF_ASSIGN_OR_RETURN(dlq_, bus_.NewProducer("status-dlq"));
  std::vector<bus::TopicPartition> parts;
  for (auto topic : {bus::topic::kSubmissions, bus::topic::kEvents}) {
    FF_ASSIGN_OR_RETURN(auto p, bus::AllPartitions(bus_, std::string(topic)));
    parts.insert(parts.end(), p.begin(), p.end());
  }
  FF_RETURN_IF_ERROR(consumer_->Assign(parts));
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void StatusWorker::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

Status StatusWorker::Handle(const bus::Record& record) {
  if (record.topic == bus::topic::kSubmissions) {
    v1::Submission submission;
    if (!submission.ParseFromString(record.value) || submission.fax_id().empty()) {
      metrics_.dead_letters.Increment();
      return dlq_->Produce(bus::DeadLetterMessage(record, "status: submission does not decode")).status();
    }
    FF_RETURN_IF_ERROR(store_.RecordSubmission(submission));
  } else {
    v1::DeliveryEvent event;
    if (!event.ParseFromString(record.value) || event.fax_id().empty() ||
        event.kind_case() == v1::DeliveryEvent::KIND_NOT_SET) {
      metrics_.dead_letters.Increment();
      return dlq_->Produce(bus::DeadLetterMessage(record, "status: delivery event does not decode")).status();
    }
    FF_RETURN_IF_ERROR(store_.Apply(event));
  }
  metrics_.applied.Increment();
  return Status::Ok();
}

void StatusWorker::Run() {
  auto log = Logger("status");
  auto beat = RegisterHeartbeat(heartbeats_, "status");
  while (!stop_) {
    beat->Beat();
    auto polled = consumer_->Poll(std::chrono::milliseconds(200), 500);
    if (!polled.ok()) {
      metrics_.errors.Increment();
      FF_LOG_WARN(log, "poll failed: {}", polled.status().ToString());
      clock_.SleepUntil(clock_.Monotonic() + std::chrono::milliseconds(500));
      continue;
    }
    std::map<bus::TopicPartition, int64_t> next;
    bool failed = false;
    const auto& records = *polled;
    for (size_t i = 0; i < records.size(); ++i) {
      const auto& record = records[i];
      Status s = Handle(record);
      if (!s.ok()) {
        // Rewind every partition to its first unapplied record of this batch so nothing is skipped;
        // everything applied before is committed below. Apply is idempotent, so a replay is harmless.
        metrics_.errors.Increment();
        FF_LOG_WARN(log, "apply {}/{}/{} failed: {}", record.topic, record.partition, record.offset, s.ToString());
        std::map<bus::TopicPartition, int64_t> rewind;
        for (size_t j = i; j < records.size(); ++j) rewind.emplace(records[j].tp(), records[j].offset);
        for (const auto& [tp, offset] : rewind) {
          Status seek = consumer_->Seek(tp, offset);
          if (!seek.ok()) FF_LOG_ERROR(log, "seek {}/{} failed: {}", tp.topic, tp.partition, seek.ToString());
        }
        failed = true;
        break;
      }
      next[record.tp()] = record.offset + 1;
    }
    if (!next.empty()) {
      std::vector<bus::TopicPartitionOffset> offsets;
      for (const auto& [tp, off] : next) offsets.push_back({tp, off});
      Status s = consumer_->Commit(offsets);
      if (!s.ok()) FF_LOG_WARN(log, "commit failed (records will be re-applied): {}", s.ToString());
    }
    if (failed) clock_.SleepUntil(clock_.Monotonic() + std::chrono::milliseconds(500));
  }
}

}  // namespace faxflow
