// The OutboundJob of one recipient of a rendered fax: what a modem worker needs to dial it.
// Built in one place for the two stages that write jobs: the imaging worker (every rendered
// fax) and the gateway's broadcast fan-out (chunks 1..k of a broadcast without covers, which
// reuse chunk 0's pages and skip imaging; docs/broadcast.md).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "schemas/job.pb.h"
#include "schemas/submission.pb.h"

namespace faxflow {

// The job of `recipient` of `sub`: its pages are `cover_page_id` (when not empty) followed by
// `page_ids`; resolution, TSI, header, priority, send-at, expiry and retry come from the
// submission's options; rendered_at_ms is `rendered_at_ms`.
v1::OutboundJob OutboundJobFor(const v1::Submission& sub, const v1::Recipient& recipient,
                               std::string_view cover_page_id, const std::vector<std::string>& page_ids,
                               int64_t rendered_at_ms);

}  // namespace faxflow
