// Internal to topics/kafka: RAII ownership of every librdkafka C handle the Kafka bus uses, and
// the translation of librdkafka errors into faxflow Status. Not for use outside topics/kafka.
#pragma once

#include <librdkafka/rdkafka.h>

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"

namespace faxflow::bus::kafka_internal {

// One deleter per handle type; unique_ptr aliases below.
struct ConfDeleter {
  void operator()(rd_kafka_conf_t* p) const { rd_kafka_conf_destroy(p); }
};
struct TopicDeleter {
  void operator()(rd_kafka_topic_t* p) const { rd_kafka_topic_destroy(p); }
};
struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* p) const { rd_kafka_topic_partition_list_destroy(p); }
};
struct HeadersDeleter {
  void operator()(rd_kafka_headers_t* p) const { rd_kafka_headers_destroy(p); }
};
struct ErrorDeleter {
  void operator()(rd_kafka_error_t* p) const { rd_kafka_error_destroy(p); }
};
struct MessageDeleter {
  void operator()(rd_kafka_message_t* p) const { rd_kafka_message_destroy(p); }
};
struct MetadataDeleter {
  void operator()(const rd_kafka_metadata_t* p) const { rd_kafka_metadata_destroy(p); }
};
struct QueueDeleter {
  void operator()(rd_kafka_queue_t* p) const { rd_kafka_queue_destroy(p); }
};
struct EventDeleter {
  void operator()(rd_kafka_event_t* p) const { rd_kafka_event_destroy(p); }
};
struct AdminOptionsDeleter {
  void operator()(rd_kafka_AdminOptions_t* p) const { rd_kafka_AdminOptions_destroy(p); }
};
struct NewTopicDeleter {
  void operator()(rd_kafka_NewTopic_t* p) const { rd_kafka_NewTopic_destroy(p); }
};
struct ConfigResourceDeleter {
  void operator()(rd_kafka_ConfigResource_t* p) const { rd_kafka_ConfigResource_destroy(p); }
};
struct GroupMetadataDeleter {
  void operator()(rd_kafka_consumer_group_metadata_t* p) const {
    rd_kafka_consumer_group_metadata_destroy(p);
  }
};
struct ListGroupOffsetsDeleter {
  void operator()(rd_kafka_ListConsumerGroupOffsets_t* p) const {
    rd_kafka_ListConsumerGroupOffsets_destroy(p);
  }
};
// Producers and the admin client: rd_kafka_destroy. Consumers are closed first by their owner
// (rd_kafka_consumer_close) so that the group leaves cleanly, then destroyed by this deleter.
struct HandleDeleter {
  void operator()(rd_kafka_t* p) const { rd_kafka_destroy(p); }
};

using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;
using TopicPtr = std::unique_ptr<rd_kafka_topic_t, TopicDeleter>;
using PartitionListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;
using HeadersPtr = std::unique_ptr<rd_kafka_headers_t, HeadersDeleter>;
using ErrorPtr = std::unique_ptr<rd_kafka_error_t, ErrorDeleter>;
using MessagePtr = std::unique_ptr<rd_kafka_message_t, MessageDeleter>;
using MetadataPtr = std::unique_ptr<const rd_kafka_metadata_t, MetadataDeleter>;
using QueuePtr = std::unique_ptr<rd_kafka_queue_t, QueueDeleter>;
using EventPtr = std::unique_ptr<rd_kafka_event_t, EventDeleter>;
using AdminOptionsPtr = std::unique_ptr<rd_kafka_AdminOptions_t, AdminOptionsDeleter>;
using NewTopicPtr = std::unique_ptr<rd_kafka_NewTopic_t, NewTopicDeleter>;
using ConfigResourcePtr = std::unique_ptr<rd_kafka_ConfigResource_t, ConfigResourceDeleter>;
using GroupMetadataPtr = std::unique_ptr<rd_kafka_consumer_group_metadata_t, GroupMetadataDeleter>;
using ListGroupOffsetsPtr = std::unique_ptr<rd_kafka_ListConsumerGroupOffsets_t, ListGroupOffsetsDeleter>;
using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;

inline PartitionListPtr NewPartitionList(int size) {
  return PartitionListPtr(rd_kafka_topic_partition_list_new(size));
}

// Maps a librdkafka error code to a Status. Codes that librdkafka or the broker recover from
// by themselves (transport, leader change, timeouts, coordinator moves) are retryable; codes
// that say the request is wrong (unknown topic, too large, not authorised) are permanent;
// fencing and __FATAL are fatal. `what` says which operation failed.
Status StatusFromErr(rd_kafka_resp_err_t err, std::string_view what, std::string_view detail = {});

// Maps an rd_kafka_error_t (transactional API and other new-style calls) using librdkafka's own
// classification: is_fatal -> kFatal (kFenced when fenced), txn_requires_abort -> kAborted
// (retryable: abort and redo), is_retriable -> retryable; errors without those flags are
// classified by code as in StatusFromErr.
Status StatusFromError(const rd_kafka_error_t* error, std::string_view what);

// True for the error codes that mean "a newer producer with the same transactional id exists".
bool IsFencedErr(rd_kafka_resp_err_t err);

}  // namespace faxflow::bus::kafka_internal
