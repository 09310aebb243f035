// Every metric of the Kafka bus backend, declared in one place. Built once per KafkaBus from
// the process registry; labels are bounded (result/severity names, never topics of user data
// or record keys). Threading: prometheus-cpp metrics are thread-safe.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "common/metrics.h"

namespace faxflow::bus {

// Counters and latencies of one KafkaBus and all clients it created.
struct KafkaBusMetrics {
  explicit KafkaBusMetrics(MetricsRegistry& registry)
      : produced(prometheus::BuildCounter()
                     .Name("faxflow_kafka_produced_records_total")
                     .Help("Records produced through the Kafka bus (non-transactional), by outcome.")
                     .Register(registry)),
        produced_ok(produced.Add({{"result", "ok"}})),
        produced_error(produced.Add({{"result", "error"}})),
        resent(produced.Add({{"result", "resent"}})),
        produce_seconds(prometheus::BuildHistogram()
                            .Name("faxflow_kafka_produce_seconds")
                            .Help("Time from Produce/ProduceBatch call to the last delivery report.")
                            .Register(registry)
                            .Add({}, LatencyBucketsSeconds())),
        consumed(prometheus::BuildCounter()
                     .Name("faxflow_kafka_consumed_records_total")
                     .Help("Records returned by Consumer::Poll of the Kafka bus.")
                     .Register(registry)
                     .Add({})),
        commits(prometheus::BuildCounter()
                    .Name("faxflow_kafka_offset_commits_total")
                    .Help("Synchronous offset commits of Kafka bus consumers, by outcome.")
                    .Register(registry)),
        commits_ok(commits.Add({{"result", "ok"}})),
        commits_error(commits.Add({{"result", "error"}})),
        transactions(prometheus::BuildCounter()
                         .Name("faxflow_kafka_transactions_total")
                         .Help("Ended Kafka transactions: committed, aborted, or failed (commit error).")
                         .Register(registry)),
        txn_committed(transactions.Add({{"result", "committed"}})),
        txn_aborted(transactions.Add({{"result", "aborted"}})),
        txn_failed(transactions.Add({{"result", "failed"}})),
        client_errors(prometheus::BuildCounter()
                          .Name("faxflow_kafka_client_errors_total")
                          .Help("Errors reported by librdkafka's error callback (connectivity, "
                                "authentication, fatal), by severity.")
                          .Register(registry)),
        client_errors_retryable(client_errors.Add({{"severity", "retryable"}})),
        client_errors_fatal(client_errors.Add({{"severity", "fatal"}})),
        client_errors_other(client_errors.Add({{"severity", "permanent"}})) {}

  prometheus::Family<prometheus::Counter>& produced;
  prometheus::Counter& produced_ok;
  prometheus::Counter& produced_error;
  prometheus::Counter& resent;  // acknowledged without an offset, sent again (kafka_bus.cc)
  prometheus::Histogram& produce_seconds;
  prometheus::Counter& consumed;
  prometheus::Family<prometheus::Counter>& commits;
  prometheus::Counter& commits_ok;
  prometheus::Counter& commits_error;
  prometheus::Family<prometheus::Counter>& transactions;
  prometheus::Counter& txn_committed;
  prometheus::Counter& txn_aborted;
  prometheus::Counter& txn_failed;
  prometheus::Family<prometheus::Counter>& client_errors;
  prometheus::Counter& client_errors_retryable;
  prometheus::Counter& client_errors_fatal;
  prometheus::Counter& client_errors_other;
};

}  // namespace faxflow::bus
