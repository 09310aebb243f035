#include "workers/notify/replica.h"

#include "common/log.h"
#include "topics/catalogue.h"

namespace faxflow::notify {

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
  follower_ =
      std::make_unique<TopicFollower>(bus_, std::string(bus::topic::kWebhooks), [this](const bus::Record& r) {
        Status s = store_.ApplyMirrored(r.key, r.value);
        if (!s.ok())
          FF_LOG_ERROR(Logger("notify"), "fax.webhooks {}/{} ({}): {}", r.partition, r.offset, r.key,
                       s.ToString());
      });
  follower_->SetHeartbeats(heartbeats_);
  FF_RETURN_IF_ERROR(follower_->Start().WithContext("following fax.webhooks"));
  if (share_deliveries_) {
    store_.SetDeliveryMirror(
        [producer](const std::vector<std::pair<std::string, std::string>>& entries) -> Status {
          std::vector<bus::Message> batch;
          batch.reserve(entries.size());
          for (const auto& [key, value] : entries) {
            bus::Message m;
            m.topic = std::string(bus::topic::kWebhookDeliveries);
            m.key = key;
            m.value = value;
            batch.push_back(std::move(m));
          }
          return producer->ProduceBatch(batch);
        });
    delivery_follower_ = std::make_unique<TopicFollower>(
        bus_, std::string(bus::topic::kWebhookDeliveries), [this](const bus::Record& r) {
          Status s = store_.ApplyMirrored(r.key, r.value);
          if (!s.ok())
            FF_LOG_ERROR(Logger("notify"), "fax.webhook-deliveries {}/{} ({}): {}", r.partition, r.offset,
                         r.key, s.ToString());
        });
    delivery_follower_->SetHeartbeats(heartbeats_);
    // Caught up before the notifier starts: a node coming back learns first what the others did
    // with its pending deliveries meanwhile.
    FF_RETURN_IF_ERROR(delivery_follower_->Start().WithContext("following fax.webhook-deliveries"));
  }
  if (!share_log_) return Status::Ok();
  store_.SetLogMirror([producer](const std::vector<std::pair<std::string, std::string>>& entries) -> Status {
    std::vector<bus::Message> batch;
    batch.reserve(entries.size());
    for (const auto& [key, value] : entries) {
      bus::Message m;
      m.topic = std::string(bus::topic::kWebhookLog);
      m.key = key;
      m.value = value;
      batch.push_back(std::move(m));
    }
    return producer->ProduceBatch(batch);
  });
  log_follower_ = std::make_unique<TopicFollower>(
      bus_, std::string(bus::topic::kWebhookLog), [this](const bus::Record& r) {
        Status s = store_.ApplyMirrored(r.key, r.value);
        if (!s.ok())
          FF_LOG_ERROR(Logger("notify"), "fax.webhook-log {}/{} ({}): {}", r.partition, r.offset, r.key,
                       s.ToString());
      });
  log_follower_->SetHeartbeats(heartbeats_);
  return log_follower_->Start().WithContext("following fax.webhook-log");
}

void WebhookReplica::Stop() {
  if (delivery_follower_) delivery_follower_->Stop();
  if (log_follower_) log_follower_->Stop();
  if (follower_) follower_->Stop();
}

}  // namespace faxflow::notify
