// Metrics plumbing. One prometheus-cpp registry per process; each component declares its own
// metrics in one place (a `<Component>Metrics` struct in the component's metrics.h, built from
// this registry, every family with help text and a unit suffix). Conventions: docs/metrics.md.
//
// The registry is exposed as Prometheus text by the process's HTTP server (gateway or admin
// server), via SerializeMetrics(). Threading: prometheus-cpp metrics are thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace faxflow {

using MetricsRegistry = prometheus::Registry;

// Renders every family of the registry in the Prometheus text exposition format (0.0.4).
std::string SerializeMetrics(const MetricsRegistry& registry);

// Bucket boundaries in seconds for durations from 1 ms to ~10 min.
std::vector<double> LatencyBucketsSeconds();

}  // namespace faxflow
