#include "storage/ledger_codec.h"

#include "storage/rocks_util.h"

namespace faxflow::storage_internal {
namespace {

constexpr char kLedgerVersion = 1;
constexpr size_t kFixedSize = 1 + 4 * 4 + 1 + 4 * 3 + 8 + 4;

void PutI32(std::string* out, int32_t v) { AppendFixed32(out, static_cast<uint32_t>(v)); }

bool GetI32(std::string_view in, size_t* pos, int32_t* v) {
  uint32_t u = 0;
  if (!ReadFixed32(in, pos, &u)) return false;
  *v = static_cast<int32_t>(u);
  return true;
}

}  // namespace

std::string EncodeLedger(const StoredLedger& stored) {
  const JobLedger& l = stored.ledger;
  std::string out;
  out.reserve(kFixedSize + 4 * stored.pages_pending.size());
  out.push_back(kLedgerVersion);
  PutI32(&out, l.attempts_begun);
  PutI32(&out, l.attempts_finished);
  PutI32(&out, l.pages_confirmed);
  PutI32(&out, l.pages_total);
  out.push_back(static_cast<char>(l.terminal ? 1 : 0));
  PutI32(&out, l.terminal_state);
  PutI32(&out, l.terminal_reason);
  PutI32(&out, l.duplicates_suppressed);
  AppendFixed64(&out, static_cast<uint64_t>(l.updated_at_ms));
  AppendFixed32(&out, static_cast<uint32_t>(stored.pages_pending.size()));
  for (int32_t page : stored.pages_pending) PutI32(&out, page);
  return out;
}

Result<StoredLedger> DecodeLedger(std::string_view job_id, std::string_view bytes) {
  auto corrupt = [&](std::string_view why) {
    return Status::Fatal(Code::kCorruption,
                         "dedup ledger of job " + std::string(job_id) + " is undecodable: " + std::string(why));
  };
  if (bytes.empty()) return corrupt("empty value");
  if (bytes[0] != kLedgerVersion) return corrupt("unknown version " + std::to_string(static_cast<int>(bytes[0])));
  if (bytes.size() < kFixedSize) return corrupt("truncated");
  StoredLedger stored;
  JobLedger& l = stored.ledger;
  l.job_id = std::string(job_id);
  size_t pos = 1;
  bool ok = GetI32(bytes, &pos, &l.attempts_begun) && GetI32(bytes, &pos, &l.attempts_finished) &&
            GetI32(bytes, &pos, &l.pages_confirmed) && GetI32(bytes, &pos, &l.pages_total);
  if (!ok) return corrupt("truncated");
  const auto flags = static_cast<unsigned char>(bytes[pos++]);
  if ((flags & ~1u) != 0) return corrupt("unknown flags");
  l.terminal = (flags & 1u) != 0;
  uint64_t updated = 0;
  uint32_t pending = 0;
  ok = GetI32(bytes, &pos, &l.terminal_state) && GetI32(bytes, &pos, &l.terminal_reason) &&
       GetI32(bytes, &pos, &l.duplicates_suppressed) && ReadFixed64(bytes, &pos, &updated) &&
       ReadFixed32(bytes, &pos, &pending);
  if (!ok) return corrupt("truncated");
  l.updated_at_ms = static_cast<int64_t>(updated);
  if (bytes.size() - pos != static_cast<size_t>(pending) * 4) return corrupt("pending page list length mismatch");
  stored.pages_pending.reserve(pending);
  int32_t previous = l.pages_confirmed;
  for (uint32_t i = 0; i < pending; ++i) {
    int32_t page = 0;
    if (!GetI32(bytes, &pos, &page)) return corrupt("truncated");
    if (page <= previous + (i == 0 ? 1 : 0)) return corrupt("pending pages not ascending above the confirmed run");
    stored.pages_pending.push_back(page);
    previous = page;
  }
  if (l.attempts_begun < 0 || l.attempts_finished < 0 || l.attempts_finished > l.attempts_begun ||
      l.pages_confirmed < 0 || l.pages_total < 0 || l.duplicates_suppressed < 0) {
    return corrupt("counters out of range");
  }
  return stored;
}

std::string DescribeLedger(const JobLedger& l) {
  std::string out = "job " + l.job_id + ": attempts_begun=" + std::to_string(l.attempts_begun) +
                    " attempts_finished=" + std::to_string(l.attempts_finished) +
                    " pages_confirmed=" + std::to_string(l.pages_confirmed) + "/" + std::to_string(l.pages_total);
  if (l.terminal) {
    out += " terminal(state=" + std::to_string(l.terminal_state) + ", reason=" + std::to_string(l.terminal_reason) +
           ")";
  }
  out += " duplicates_suppressed=" + std::to_string(l.duplicates_suppressed);
  return out;
}

}  // namespace faxflow::storage_internal
