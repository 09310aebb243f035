// Phone numbers: every destination is normalised to E.164 with libphonenumber at submission,
// so the rest of the pipeline (routing, per-destination limits, dedup) sees one canonical form.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace faxflow {

// Parses `input` ("+1 (555) 123-0001", "0044 20 7946 0018", or a national number read in
// `default_region`) and returns it in E.164 ("+15551230001"). kInvalidArgument (permanent)
// with a message saying why when it is not a valid, dialable number.
// Numbers of the fictional North American 555-01xx block and other test ranges used by the
// simulated line are accepted when `allow_test_numbers` is true.
Result<std::string> NormalizeNumber(std::string_view input, std::string_view default_region,
                                    bool allow_test_numbers = true);

}  // namespace faxflow
