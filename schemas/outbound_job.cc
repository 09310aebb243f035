#include "schemas/outbound_job.h"

namespace faxflow {

v1::OutboundJob OutboundJobFor(const v1::Submission& sub, const v1::Recipient& recipient,
                               std::string_view cover_page_id, const std::vector<std::string>& page_ids,
                               int64_t rendered_at_ms) {
  const v1::FaxOptions& o = sub.options();
  v1::OutboundJob job;
  job.set_job_id(recipient.recipient_id());
  job.set_fax_id(sub.fax_id());
  job.set_tenant(sub.tenant());
  job.set_number(recipient.number());
  if (!cover_page_id.empty()) job.add_pages()->set_blob_id(std::string(cover_page_id));
  for (const auto& id : page_ids) job.add_pages()->set_blob_id(id);
  // Pages are rendered fine unless normal was asked for (imaging's RenderRequest does the same).
  job.set_resolution(o.resolution() == v1::RESOLUTION_NORMAL ? v1::RESOLUTION_NORMAL : v1::RESOLUTION_FINE);
  job.set_tsi(o.tsi());
  job.set_header_text(o.header_text());
  job.set_priority(o.priority());
  job.set_submitted_at_ms(sub.submitted_at_ms());
  job.set_rendered_at_ms(rendered_at_ms);
  if (o.send_at_ms() != 0) job.set_send_at_ms(o.send_at_ms());
  if (o.expires_at_ms() != 0) job.set_expires_at_ms(o.expires_at_ms());
  if (o.has_retry()) *job.mutable_retry() = o.retry();
  return job;
}

}  // namespace faxflow
