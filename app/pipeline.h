// The wiring of one faxflow process: which stages run here, on which bus, with which stores.
//
// `faxflow all` runs every role in one process; the distributed roles (`faxflow gateway`,
// `imaging`, `modem`) run a subset against Kafka. Stores live under config.data_dir:
//   bus/ (embedded bus), blobs/, dedup/, status/, received/ (sim far end), modem-work/.
// With blob.url set, the blob store is the shared blob server (`faxflow blobs`) instead of
// blobs/: that is how separate processes see the same sources and pages.
// Start order is bottom-up (bus and stores, topics, then the consumers, the gateway last, so
// nothing is accepted before the pipeline can carry it). Stop() is the reverse: the gateway
// stops accepting, the workers finish or hand back in-flight work and commit, then the stores
// close. Threading: Start/Stop from one thread; the parts are thread-safe.
#pragma once

#include <memory>
#include <string>

#include <prometheus/registry.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/status.h"
#include "monitoring/health.h"
#include "storage/blob_store.h"
#include "storage/status_store.h"
#include "topics/bus.h"

namespace faxflow {

struct Roles {
  bool gateway = false;  // REST API + status worker + status store
  bool imaging = false;
  bool modem = false;
  bool blobs = false;    // serve this process's blob store over HTTP (`faxflow blobs`)
  static Roles All() { return {true, true, true, false}; }
  bool uses_bus() const { return gateway || imaging || modem; }
};

// Opens the bus the config names (embedded under data_dir/bus, or Kafka).
Result<std::unique_ptr<bus::Bus>> OpenConfiguredBus(const Config& config, prometheus::Registry* registry);

class Pipeline {
 public:
  static Result<std::unique_ptr<Pipeline>> Start(const Config& config, Roles roles, Clock& clock);
  ~Pipeline();
  void Stop();

  // Port of the REST API (gateway role), or of the admin server (/metrics, /healthz, /readyz).
  int http_port() const;
  StatusStore* status_store() const;
  BlobStore& blobs() const;
  prometheus::Registry& registry() const;
  bus::Bus& bus() const;
  Status Ready() const;
  // Readiness checks and heartbeats of this process (/readyz): components add their own checks
  // (e.g. "claims") with health().AddReadinessCheck and beat from their loops with health().Beat.
  monitoring::Health& health() const;

 private:
  struct Parts;
  explicit Pipeline(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace faxflow
