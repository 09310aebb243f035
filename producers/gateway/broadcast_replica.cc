#include "producers/gateway/broadcast_replica.h"

#include "common/log.h"
#include "storage/blob_store.h"
#include "topics/catalogue.h"

namespace faxflow {

std::string ChunkId(std::string_view prefix, const std::string& seed, const std::string& salt) {
  static constexpr char kAlphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";  // as common/ids.cc
  std::string out(prefix);
  out += '_';
  // The seed's time part (10 characters after "<prefix>_"), when it has one.
  const size_t us = seed.find('_');
  const std::string time = us != std::string::npos && seed.size() >= us + 11 ? seed.substr(us + 1, 10) : "";
  const std::string digest = Sha256Hex(seed + "/" + salt);  // 64 hex characters
  if (time.size() == 10) {
    out += time;
  } else {
    for (size_t i = 0; i < 10; ++i)
      out += kAlphabet[std::stoi(digest.substr(20 + 2 * i, 2), nullptr, 16) & 31];
  }
  for (size_t i = 0; i < 10; ++i) out += kAlphabet[std::stoi(digest.substr(2 * i, 2), nullptr, 16) & 31];
  return out;
}

// Reads from the local store; RecordSubmission/Apply are produced to fax.broadcasts first.
class BroadcastReplica::Mirrored : public StatusStore {
 public:
  Mirrored(BroadcastReplica& replica, StatusStore& inner) : replica_(replica), inner_(inner) {}
  Status RecordSubmission(const v1::Submission& submission) override {
    FF_RETURN_IF_ERROR(replica_.Produce("s/" + submission.fax_id(), submission.SerializeAsString()));
    return inner_.RecordSubmission(submission);
  }
  Status Apply(const v1::DeliveryEvent& event) override {
    FF_RETURN_IF_ERROR(replica_.Produce("e/" + event.event_id(), event.SerializeAsString()));
    return inner_.Apply(event);
  }
  Result<std::optional<v1::FaxStatus>> Get(const std::string& fax_id) override { return inner_.Get(fax_id); }
  Result<std::vector<v1::FaxStatus>> List(const std::string& tenant, size_t limit,
                                          const std::string& after_fax_id) override {
    return inner_.List(tenant, limit, after_fax_id);
  }
  Result<Books> GetBooks() override { return inner_.GetBooks(); }
  Result<FaxPage> Query(const FaxQuery& query) override { return inner_.Query(query); }
  Result<std::vector<v1::DeliveryEvent>> Events(const std::string& fax_id) override {
    return inner_.Events(fax_id);
  }

 private:
  BroadcastReplica& replica_;
  StatusStore& inner_;
};

BroadcastReplica::BroadcastReplica(bus::Bus& bus, StatusStore& status) : bus_(bus), status_(status) {}

BroadcastReplica::~BroadcastReplica() { Stop(); }

Status BroadcastReplica::Open() {
  FF_ASSIGN_OR_RETURN(producer_, bus_.NewProducer("broadcast-replica"));
  mirrored_ = std::make_unique<Mirrored>(*this, status_);
  return Status::Ok();
}

StatusStore& BroadcastReplica::status_store() { return *mirrored_; }

Status BroadcastReplica::Produce(const std::string& key, const std::string& value) {
  bus::Message m;
  m.topic = std::string(bus::topic::kBroadcasts);
  m.key = key;
  m.value = value;
  auto r = producer_->Produce(m);
  return r.ok() ? Status::Ok() : r.status().WithContext("publishing " + key + " to fax.broadcasts");
}

void BroadcastReplica::ApplyRecord(const bus::Record& r) {
  Status s;
  if (r.value.empty()) return;  // no tombstones are written; nothing to apply
  if (r.key.rfind("s/", 0) == 0) {
    v1::Submission sub;
    s = sub.ParseFromString(r.value) ? status_.RecordSubmission(sub)
                                     : Status::Permanent(Code::kInvalidArgument, "bad Submission");
  } else if (r.key.rfind("e/", 0) == 0) {
    v1::DeliveryEvent ev;
    s = ev.ParseFromString(r.value) ? status_.Apply(ev)
                                    : Status::Permanent(Code::kInvalidArgument, "bad DeliveryEvent");
  } else {
    s = service_->ApplyReplicated(r.key, r.value);
  }
  if (!s.ok())
    FF_LOG_ERROR(Logger("broadcast"), "fax.broadcasts {}/{} ({}): {}", r.partition, r.offset, r.key,
                 s.ToString());
}

Status BroadcastReplica::Start(BroadcastService& service,
                               std::function<bool(const std::string& tenant)> drives) {
  if (!producer_) return Status::Fatal(Code::kFailedPrecondition, "broadcast replica not open");
  service_ = &service;
  service.SetReplication(
      [this](const std::string& key, const std::string& value) { return Produce(key, value); },
      std::move(drives));
  follower_ = std::make_unique<TopicFollower>(bus_, std::string(bus::topic::kBroadcasts),
                                              [this](const bus::Record& r) { ApplyRecord(r); });
  follower_->SetHeartbeats(heartbeats_);
  return follower_->Start().WithContext("following fax.broadcasts");
}

void BroadcastReplica::Stop() {
  if (follower_) follower_->Stop();
}

}  // namespace faxflow
