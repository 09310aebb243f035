// Cover pages: a PostScript page built by the gateway from a template and fields, stored like an
// uploaded document and placed before the documents (the imaging worker renders it with the rest).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "schemas/submission.pb.h"

namespace faxflow {

// Templates: "basic" and "confidential". Fields (all optional, printable ASCII, <= 500 chars,
// message <= 2000): to_name, to_company, from_name, from_company, from_phone, subject, message.
Status ValidateCoverPage(const v1::CoverPage& cover);

// True for the field names ValidateCoverPage accepts (to_name, to_company, ...).
bool IsCoverField(const std::string& name);

// The cover page as PostScript. `to` lists the recipients' numbers; `date` is shown as given.
std::string RenderCoverPage(const v1::CoverPage& cover, const std::vector<std::string>& to,
                            const std::string& date);

// The date a cover page shows for `ms` (epoch milliseconds): "2026-11-22 13:05 UTC".
std::string CoverDate(int64_t ms);

}  // namespace faxflow
