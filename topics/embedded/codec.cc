#include "topics/embedded/codec.h"

#include <cstring>

namespace faxflow::bus::embedded {
namespace {

constexpr uint8_t kRecordVersion = 1;
constexpr uint8_t kTopicVersion = 1;

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void PutBytes(std::string& out, std::string_view bytes) {
  PutVarint(out, bytes.size());
  out.append(bytes);
}

// Sequential reader over an encoded value; any overrun marks it bad.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  bool done() const { return in_.empty(); }

  uint8_t Byte() {
    if (in_.empty()) return Fail(), 0;
    uint8_t b = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return b;
  }
  uint64_t Fixed64() {
    if (in_.size() < 8) return Fail(), 0;
    uint64_t v = GetBigEndian64(in_.data());
    in_.remove_prefix(8);
    return v;
  }
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (in_.empty()) return Fail(), 0;
      uint8_t b = static_cast<uint8_t>(in_[0]);
      in_.remove_prefix(1);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    return Fail(), 0;
  }
  std::string_view Bytes() {
    uint64_t n = Varint();
    if (!ok_ || n > in_.size()) return Fail(), std::string_view();
    std::string_view out = in_.substr(0, n);
    in_.remove_prefix(n);
    return out;
  }

 private:
  void Fail() {
    ok_ = false;
    in_ = {};
  }
  std::string_view in_;
  bool ok_ = true;
};

Status Corrupt(std::string_view what) {
  return Status::Fatal(Code::kCorruption, "embedded bus: stored " + std::string(what) + " does not decode");
}

}  // namespace

bool ValidTopicName(std::string_view name) {
  if (name.empty() || name.size() > 249 || name == "." || name == "..") return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

void PutBigEndian32(std::string& out, uint32_t v) {
  for (int i = 3; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void PutBigEndian64(std::string& out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint32_t GetBigEndian32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

uint64_t GetBigEndian64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

std::string TopicKey(std::string_view topic) { return std::string(kTopicPrefix) + std::string(topic); }

std::string PartitionPrefix(std::string_view topic, int32_t partition) {
  std::string k = "r/";
  k.append(topic);
  k.push_back('/');
  PutBigEndian32(k, static_cast<uint32_t>(partition));
  return k;
}

std::string RecordKey(std::string_view topic, int32_t partition, int64_t offset) {
  std::string k = PartitionPrefix(topic, partition);
  PutBigEndian64(k, static_cast<uint64_t>(offset));
  return k;
}

int64_t RecordKeyOffset(std::string_view key) {
  return static_cast<int64_t>(GetBigEndian64(key.data() + key.size() - 8));
}

std::string StartOffsetKey(std::string_view topic, int32_t partition) {
  std::string k = "s/";
  k.append(topic);
  k.push_back('/');
  PutBigEndian32(k, static_cast<uint32_t>(partition));
  return k;
}

std::string CommittedKey(std::string_view topic, int32_t partition, std::string_view group) {
  std::string k(kCommittedPrefix);
  k.append(topic);
  k.push_back('/');
  PutBigEndian32(k, static_cast<uint32_t>(partition));
  k.push_back('/');
  k.append(group);
  return k;
}

bool ParseCommittedKey(std::string_view key, std::string* topic, int32_t* partition, std::string* group) {
  if (key.substr(0, kCommittedPrefix.size()) != kCommittedPrefix) return false;
  key.remove_prefix(kCommittedPrefix.size());
  size_t slash = key.find('/');  // topic names never contain '/'
  if (slash == std::string_view::npos || key.size() < slash + 1 + 4 + 1) return false;
  *topic = std::string(key.substr(0, slash));
  *partition = static_cast<int32_t>(GetBigEndian32(key.data() + slash + 1));
  if (key[slash + 5] != '/') return false;
  *group = std::string(key.substr(slash + 6));
  return true;
}

std::string EpochKey(std::string_view transactional_id) { return "x/" + std::string(transactional_id); }

std::string EncodeInt64(int64_t v) {
  std::string out;
  PutBigEndian64(out, static_cast<uint64_t>(v));
  return out;
}

Result<int64_t> DecodeInt64(std::string_view bytes) {
  if (bytes.size() != 8) return Corrupt("offset");
  return static_cast<int64_t>(GetBigEndian64(bytes.data()));
}

std::string EncodeRecord(int64_t timestamp_ms, std::string_view key, std::string_view value,
                         const std::vector<Header>& headers) {
  std::string out;
  size_t size = 1 + 8 + 10 + key.size() + 10 + value.size() + 10;
  for (const auto& h : headers) size += 20 + h.key.size() + h.value.size();
  out.reserve(size);
  out.push_back(static_cast<char>(kRecordVersion));
  PutBigEndian64(out, static_cast<uint64_t>(timestamp_ms));
  PutBytes(out, key);
  PutBytes(out, value);
  PutVarint(out, headers.size());
  for (const auto& h : headers) {
    PutBytes(out, h.key);
    PutBytes(out, h.value);
  }
  return out;
}

Status DecodeRecord(std::string_view bytes, Record* out) {
  Reader r(bytes);
  if (r.Byte() != kRecordVersion) return Corrupt("record (unknown version)");
  out->timestamp_ms = static_cast<int64_t>(r.Fixed64());
  out->key = std::string(r.Bytes());
  out->value = std::string(r.Bytes());
  uint64_t n = r.Varint();
  if (!r.ok() || n > bytes.size()) return Corrupt("record");
  out->headers.clear();
  out->headers.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    Header h;
    h.key = std::string(r.Bytes());
    h.value = std::string(r.Bytes());
    out->headers.push_back(std::move(h));
  }
  if (!r.ok() || !r.done()) return Corrupt("record");
  return Status::Ok();
}

Result<int64_t> DecodeRecordTimestamp(std::string_view bytes) {
  Reader r(bytes);
  if (r.Byte() != kRecordVersion) return Corrupt("record (unknown version)");
  int64_t ts = static_cast<int64_t>(r.Fixed64());
  if (!r.ok()) return Corrupt("record");
  return ts;
}

std::string EncodeTopicSpec(const TopicSpec& spec) {
  std::string out;
  out.push_back(static_cast<char>(kTopicVersion));
  PutVarint(out, static_cast<uint32_t>(spec.partitions));
  PutVarint(out, static_cast<uint16_t>(spec.replication_factor));
  out.push_back(spec.compacted ? 1 : 0);
  PutBigEndian64(out, static_cast<uint64_t>(spec.retention_ms));
  PutVarint(out, static_cast<uint32_t>(spec.max_message_bytes));
  PutBytes(out, spec.doc);
  return out;
}

Result<TopicSpec> DecodeTopicSpec(std::string_view name, std::string_view bytes) {
  Reader r(bytes);
  if (r.Byte() != kTopicVersion) return Corrupt("topic spec (unknown version)");
  TopicSpec spec;
  spec.name = std::string(name);
  spec.partitions = static_cast<int32_t>(r.Varint());
  spec.replication_factor = static_cast<int16_t>(r.Varint());
  spec.compacted = r.Byte() != 0;
  spec.retention_ms = static_cast<int64_t>(r.Fixed64());
  spec.max_message_bytes = static_cast<int32_t>(r.Varint());
  spec.doc = std::string(r.Bytes());
  if (!r.ok() || !r.done() || spec.partitions <= 0) return Corrupt("topic spec");
  return spec;
}

}  // namespace faxflow::bus::embedded
