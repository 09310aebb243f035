// `faxflow demo`: the whole pipeline in this process on the embedded bus, one bundled 4-page
// PDF sent over the REST API to the simulated far end, and a report of what arrived.
#pragma once

#include "common/config.h"

namespace faxflow {

// Returns the process exit code: 0 when the fax was delivered and every received page is
// pixel-identical to the rendered one.
int RunDemo(Config config, bool keep_running);

}  // namespace faxflow
