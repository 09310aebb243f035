// Rows for the modem scenario matrix (tests/modem/scenario_matrix_test.cc): the sim line's
// T.38 and line-condition far ends (docs/sim.md, docs/t38.md), each with what a user must see.
// Owned by the T.38 work; the matrix test maps these onto its own row type.
#pragma once

#include <vector>

#include "schemas/common.pb.h"

namespace faxflow::modem::testing {

struct LineConditionRow {
  const char* name;    // test-case name
  const char* number;  // built-in sim number (SimDirectory::BuiltIn)
  v1::RecipientState state;
  v1::FailureReason reason;  // REASON_UNSPECIFIED when delivered
  int dials;                 // calls the job takes (normal_only: fine fails, normal retry delivers)
  bool pixel_identical;      // received pages equal the sent ones (normal_only: equal the 204x98
                             // down-sampled pages, pages::ToNormalResolution)
  bool needs_normal_retry;   // the retry must send pages::ToNormalResolution(pages)
};

// Every row delivers all pages; normal_only needs two dials (capability_mismatch, typed
// completion T30_ERR_NORESSUPPORT, then a normal-resolution retry).
inline std::vector<LineConditionRow> LineConditionRows() {
  return {
      {"t38_no_loss", "+15550100100", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 1, true, false},
      {"t38_loss_1pct", "+15550100101", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 1, true, false},
      {"t38_loss_10pct", "+15550100102", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 1, true, false},
      {"normal_only", "+15550100103", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 2, true, true},
      {"slow_9600", "+15550100104", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 1, true, false},
      {"slow_4800", "+15550100105", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 1, true, false},
      {"noise_minus50", "+15550100106", v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED, 1, true, false},
  };
}

}  // namespace faxflow::modem::testing
