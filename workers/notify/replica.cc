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
  return follower_->Start().WithContext("following fax.webhooks");
}

void WebhookReplica::Stop() {
  if (follower_) follower_->Stop();
}

}  // namespace faxflow::notify
