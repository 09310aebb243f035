#include "producers/gateway/topic_follower.h"

#include <random>

#include "common/log.h"

namespace faxflow {

TopicFollower::TopicFollower(bus::Bus& bus, std::string topic, Apply apply)
    : bus_(bus), topic_(std::move(topic)), apply_(std::move(apply)) {}

TopicFollower::~TopicFollower() { Stop(); }

Status TopicFollower::Start(std::chrono::milliseconds timeout) {
  // A group of its own that never commits: every start reads the topic from the beginning.
  std::random_device rd;
  const std::string group = "faxflow-follower-" + topic_ + "-" + std::to_string(rd()) + std::to_string(rd());
  FF_ASSIGN_OR_RETURN(consumer_, bus_.NewConsumer({group, "follower-" + topic_, true}));
  FF_ASSIGN_OR_RETURN(auto parts, bus::AllPartitions(bus_, topic_));
  FF_RETURN_IF_ERROR(consumer_->Assign(parts));
  std::map<int32_t, int64_t> end;
  for (const auto& tp : parts) {
    FF_ASSIGN_OR_RETURN(int64_t e, consumer_->EndOffset(tp));
    end[tp.partition] = e;
  }
  const auto began = std::chrono::steady_clock::now();
  const auto deadline = began + timeout;
  int empty_polls = 0;
  for (;;) {
    bool caught_up = true;
    {
      std::lock_guard lock(mu_);
      for (const auto& [p, e] : end) {
        auto it = next_.find(p);
        if (e > 0 && (it == next_.end() || it->second < e)) caught_up = false;
      }
    }
    if (caught_up) break;
    if (std::chrono::steady_clock::now() > deadline)
      return Status::Retryable(Code::kTimeout, "could not catch up with " + topic_ + " in time");
    Result<size_t> polled = PollOnce(std::chrono::milliseconds(200));
    if (!polled.ok()) {
      // A broker that has just started answers the committed-offset fetch with NOT_COORDINATOR or
      // COORDINATOR_LOAD_IN_PROGRESS for a while (retryable; the consumer asks again): keep
      // polling until the deadline, as Run() does, instead of failing the node's start.
      if (!polled.status().retryable()) return polled.status();
      FF_LOG_INFO(Logger("gateway"), "catching up with {}: {} (retrying)", topic_, polled.status().ToString());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // a retry pace, not a wait for a condition
      continue;
    }
    const size_t n = *polled;
    // Nothing more to read although an end offset is not reached: the records below it were
    // deleted by retention (or are transaction markers). Caught up with what exists.
    empty_polls = n == 0 ? empty_polls + 1 : 0;
    // (Only after a few seconds: a broker's first fetch can take a moment.)
    if (empty_polls >= 3 && std::chrono::steady_clock::now() > began + std::chrono::seconds(5)) break;
  }
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void TopicFollower::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

Result<size_t> TopicFollower::PollOnce(std::chrono::milliseconds wait) {
  FF_ASSIGN_OR_RETURN(auto records, consumer_->Poll(wait, 1000));
  for (const auto& r : records) {
    apply_(r);
    std::lock_guard lock(mu_);
    next_[r.partition] = r.offset + 1;
  }
  if (!records.empty()) cv_.notify_all();
  return records.size();
}

void TopicFollower::Run() {
  std::string component = "follow_" + topic_;  // a catalogue topic: bounded
  for (char& c : component)
    if (c == '.' || c == '-') c = '_';
  auto beat = RegisterHeartbeat(heartbeats_, component);
  while (!stop_) {
    beat->Beat();
    auto polled = PollOnce(std::chrono::milliseconds(50));
    if (!polled.ok()) {
      FF_LOG_WARN(Logger("gateway"), "following {}: {}", topic_, polled.status().ToString());
      std::this_thread::sleep_for(std::chrono::milliseconds(200));  // back off after a bus error
    }
  }
}

Status TopicFollower::WaitApplied(int32_t partition, int64_t offset, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  const bool ok = cv_.wait_for(lock, timeout, [&] {
    auto it = next_.find(partition);
    return it != next_.end() && it->second > offset;
  });
  if (!ok)
    return Status::Retryable(Code::kTimeout, topic_ + "/" + std::to_string(partition) + "@" +
                                                 std::to_string(offset) + " not applied in time");
  return Status::Ok();
}

}  // namespace faxflow
