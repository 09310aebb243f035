// Transmission reports: what a fax machine prints after sending ("TX confirmation report"), per
// recipient in a terminal state. Two renderings of the same facts:
//   - JSON (machine-readable): recipient, number, final state and reason, remote CSID, rate,
//     ECM, pages confirmed, line time, every attempt (start, duration, pages, result, SpanDSP
//     completion name, line plan) and every page (confirmed on which attempt and when);
//   - a one-page PDF (A4, Helvetica, written directly, no external tools) with the same table
//     and a thumbnail of the first page (8-bit gray, downscaled from the fax page).
// The modem worker stores both in the blob store and announces them with a
// DeliveryEvent.report (TransmissionReport: json_blob_id, pdf_blob_id).
//
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/time_format.h"
#include "common/status.h"
#include "pages/pages.h"
#include "schemas/common.pb.h"
#include "schemas/job.pb.h"
#include "workers/modem/schedule_store.h"

namespace faxflow::modem {

struct ReportInput {
  v1::OutboundJob job;
  v1::RecipientState state = v1::STATE_UNSPECIFIED;
  v1::FailureReason reason = v1::REASON_UNSPECIFIED;
  std::string detail;
  int32_t pages_sent = 0;  // contiguous pages confirmed (ledger)
  int32_t pages_total = 0;
  std::vector<AttemptRecord> attempts;
  std::vector<PageRecord> pages;
  std::optional<pages::Bitmap> first_page;  // for the thumbnail
  std::string local_ident;
  std::string site;
  int64_t generated_ms = 0;
};

struct Thumbnail {
  uint32_t width = 0;
  uint32_t height = 0;
  std::vector<uint8_t> gray;  // row-major, 0 = black, 255 = white
};

// Downscales a fax page (1 = black) to about `target_width` pixels wide, keeping the aspect of
// 204 dpi across and 98/196 dpi down.
Thumbnail MakeThumbnail(const pages::Bitmap& page, uint32_t target_width = 216);

std::string ReportJson(const ReportInput& in);
// A valid one-page PDF 1.4 document.
std::string ReportPdf(const ReportInput& in);

// "delivered", "busy" (lowercase enum names without prefix)
std::string StateName(int state);
std::string ReasonName(int reason);

}  // namespace faxflow::modem
