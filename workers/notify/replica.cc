#include "workers/notify/replica.h"

#include "common/log.h"
#include "topics/catalogue.h"

namespace faxflow::notify {

namespace {

// A mirror producing each (key, value) entry to `topic` as one batch.
NotifyStore::LogMirror BatchMirror(bus::Producer* producer, std::string_view topic) {
  return [producer, topic](const std::vector<std::pair<std::string, std::string>>& entries) -> Status {
    std::vector<bus::Message> batch;
    batch.reserve(entries.size());
    for (const auto& [key, value] : entries) {
      bus::Message m;
      m.topic = std::string(topic);
      m.key = key;
      m.value = value;
      batch.push_back(std::move(m));
    }
    return producer->ProduceBatch(batch);
  };
}

// A follower of `topic` applying every record to the store (a record it refuses is logged).
std::unique_ptr<TopicFollower> StoreFollower(bus::Bus& bus, NotifyStore& store, std::string_view topic,
                                             Heartbeats* heartbeats) {
  auto follower =
      std::make_unique<TopicFollower>(bus, std::string(topic), [&store, topic](const bus::Record& r) {
        Status s = store.ApplyMirrored(r.key, r.value);
        if (!s.ok())
          FF_LOG_ERROR(Logger("notify"), "{} {}/{} ({}): {}", topic, r.partition, r.offset, r.key,
                       s.ToString());
      });
  follower->SetHeartbeats(heartbeats);
  return follower;
}

}  // namespace

WebhookReplica::WebhookReplica(bus::Bus& bus, NotifyStore& store) : bus_(bus), store_(store) {}

WebhookReplica::~WebhookReplica() { Stop(); }

Status WebhookReplica::Start() {
  FF_ASSIGN_OR_RETURN(producer_, bus_.NewProducer("webhook-replica"));
  bus::Producer* producer = producer_.get();
  store_.SetMirror([producer](const std::string& key, const std::string& value) -> Status {
    bus::Message m;
    m.topic = std::string(bus::topic::kWebhooks);
    m.key = key;
    m.value = value;
    auto r = producer->Produce(m);
    return r.ok() ? Status::Ok() : r.status();
  });
  follower_ = StoreFollower(bus_, store_, bus::topic::kWebhooks, heartbeats_);
  FF_RETURN_IF_ERROR(follower_->Start().WithContext("following fax.webhooks"));
  if (share_deliveries_) {
    store_.SetDeliveryMirror(BatchMirror(producer, bus::topic::kWebhookDeliveries));
    delivery_follower_ = StoreFollower(bus_, store_, bus::topic::kWebhookDeliveries, heartbeats_);
    // Caught up before the notifier starts: a node coming back learns first what the others did
    // with its pending deliveries meanwhile.
    FF_RETURN_IF_ERROR(delivery_follower_->Start().WithContext("following fax.webhook-deliveries"));
  }
  if (!share_log_) return Status::Ok();
  store_.SetLogMirror(BatchMirror(producer, bus::topic::kWebhookLog));
  log_follower_ = StoreFollower(bus_, store_, bus::topic::kWebhookLog, heartbeats_);
  return log_follower_->Start().WithContext("following fax.webhook-log");
}

void WebhookReplica::Stop() {
  if (delivery_follower_) delivery_follower_->Stop();
  if (log_follower_) log_follower_->Stop();
  if (follower_) follower_->Stop();
}

}  // namespace faxflow::notify
