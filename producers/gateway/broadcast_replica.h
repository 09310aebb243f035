// Broadcasts shared by every gateway node (docs/broadcast.md "Several gateway nodes").
//
// A broadcast's state lives in the broadcast store of the node that accepted it (BroadcastService,
// <data_dir>/broadcasts: the record "b/<id>" with the fan-out cursor, and "c/<id>/<n>" with each
// chunk's fax and recipient ids) and in the status records the driver writes for the chunks it
// fans out (not on fax.submissions, so no other node's status worker sees them). With several
// gateway nodes (owner routing on) all of that is replicated through the compacted topic
// fax.broadcasts:
//   - every write of the broadcast store is handed to the mirror before the local write (key = the
//     store key, value = the record's JSON);
//   - the status writes of the driver go through MirroredStatusStore: a chunk's Submission (key
//     "s/<fax id>") and its rendered event (key "e/<event id>") are produced before they are
//     applied to the local status store;
//   - every node follows the topic from the beginning into its own broadcast store
//     (BroadcastService::ApplyReplicated, which never moves a record's cursor back) and its own
//     status store (RecordSubmission/Apply are idempotent).
// The driver runs only on the node owning the broadcast's tenant (the `drives` predicate). When
// that node dies, the tenant's new owner has the record, the cursor and the chunk ids in its own
// stores: it answers GET /v1/broadcasts/{id} and results.csv, and resumes an unfinished fan-out at
// the cursor. Chunk ids are derived from the broadcast id and the chunk (ChunkId), so whichever
// node fans out a chunk (again) produces the same job ids, and the modem's dial ledger suppresses
// the jobs produced twice (at most one batch after a crash, or a brief overlap while two live
// nodes disagree on the owner).
//
// Lifecycle: construct, Open() (the producer; status_store() usable from then on), Start(service,
// drives) (installs the mirror, catches up with the topic, then follows it on a thread), Stop().
// The replica must outlive the BroadcastService that uses status_store(), and be stopped before
// that service is destroyed (its follower applies records to it).
// Threading: the mirror runs on the writer's thread (a synchronous produce); applies run on the
// follower thread; the stores serialise both.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/heartbeat.h"
#include "common/status.h"
#include "producers/gateway/broadcast.h"
#include "producers/gateway/topic_follower.h"
#include "storage/status_store.h"
#include "topics/bus.h"

namespace faxflow {

// A user-facing id ("<prefix>_" + 20 id characters) derived from `seed` (a broadcast id, whose
// creation time it keeps, so ids still sort by time) and `salt` (chunk number, recipient index):
// the same inputs give the same id on every node.
std::string ChunkId(std::string_view prefix, const std::string& seed, const std::string& salt);

class BroadcastReplica {
 public:
  BroadcastReplica(bus::Bus& bus, StatusStore& status);
  ~BroadcastReplica();
  BroadcastReplica(const BroadcastReplica&) = delete;
  BroadcastReplica& operator=(const BroadcastReplica&) = delete;

  Status Open();
  // The status store to give the BroadcastService: mirrors RecordSubmission/Apply to
  // fax.broadcasts, then writes the local store; reads go to the local store.
  StatusStore& status_store();
  // Liveness of the follower loop (follow_fax_broadcasts); call before Start(). Null: none.
  void SetHeartbeats(Heartbeats* heartbeats) { heartbeats_ = heartbeats; }
  // `drives(tenant)`: true when this node drives the tenant's broadcasts (it owns the tenant).
  Status Start(BroadcastService& service, std::function<bool(const std::string& tenant)> drives);
  void Stop();

 private:
  class Mirrored;
  Status Produce(const std::string& key, const std::string& value);
  void ApplyRecord(const bus::Record& record);

  bus::Bus& bus_;
  StatusStore& status_;
  BroadcastService* service_ = nullptr;
  Heartbeats* heartbeats_ = nullptr;
  std::unique_ptr<bus::Producer> producer_;
  std::unique_ptr<Mirrored> mirrored_;
  std::unique_ptr<TopicFollower> follower_;
};

}  // namespace faxflow
