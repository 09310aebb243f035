#include "workers/modem/channel.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>

#include "common/log.h"
#include "pages/pages.h"

namespace faxflow::modem {
namespace {

bool IsDocumentProblem(const Status& st) {
  return st.code() == Code::kDocumentError || st.code() == Code::kNotFound ||
         st.code() == Code::kCorruption || st.code() == Code::kInvalidArgument;
}

}  // namespace

Channel::Channel(ChannelOptions options, LineDriver& line, BlobStore& blobs, Clock& clock)
    : options_(std::move(options)), line_(line), blobs_(blobs), clock_(clock) {}

Result<std::vector<std::string>> Channel::PreparePages(const v1::OutboundJob& job, int32_t first_page) {
  const int32_t total = job.pages_size();
  if (total == 0) return Status::Permanent(Code::kDocumentError, "job has no pages");
  if (first_page < 1 || first_page > total)
    return Status::Permanent(Code::kDocumentError, "start page " + std::to_string(first_page) +
                                                       " outside 1.." + std::to_string(total));
  std::vector<std::string> pages;
  pages.reserve(static_cast<size_t>(total - first_page + 1));
  for (int32_t p = first_page; p <= total; ++p) {
    auto blob = blobs_.Get(job.pages(p - 1).blob_id());
    if (!blob.ok()) return blob.status().WithContext("page " + std::to_string(p) + " blob");
    pages.push_back(std::move(*blob));
  }
  // Each page must be a valid fax page on its own (JoinPages checks that too, for the whole set).
  FF_RETURN_IF_ERROR(pages::JoinPages(pages).status());
  return pages;
}

Result<AttemptOutcome> Channel::RunAttempt(const v1::OutboundJob& job, const AttemptPlan& plan,
                                           const AttemptHooks& hooks) {
  CallDocument doc;
  doc.job = &job;
  doc.attempt = plan.attempt;
  doc.first_page = plan.first_page;
  CallHooks call_hooks;
  call_hooks.before_dial = hooks.before_dial;
  call_hooks.should_abort = hooks.should_abort;
  call_hooks.on_connected = hooks.on_connected;
  if (hooks.on_page_confirmed)
    call_hooks.on_page_confirmed = [&](size_t, int32_t page) { hooks.on_page_confirmed(page); };
  FF_ASSIGN_OR_RETURN(auto outcomes, RunCall({doc}, plan, call_hooks));
  return std::move(outcomes.front());
}

Result<std::vector<AttemptOutcome>> Channel::RunCall(const std::vector<CallDocument>& documents,
                                                     const AttemptPlan& plan, const CallHooks& hooks) {
  static const auto logger = Logger("modem");
  if (documents.empty()) return Status::Permanent(Code::kInvalidArgument, "a call needs a document");
  std::vector<AttemptOutcome> outs(documents.size());
  std::vector<std::string> pages;
  std::vector<int32_t> call_first(documents.size(), 0);  // 1-based first page in the call, 0 = left out
  std::vector<int32_t> call_count(documents.size(), 0);
  std::vector<size_t> in_call;
  for (size_t i = 0; i < documents.size(); ++i) {
    const CallDocument& d = documents[i];
    AttemptOutcome& out = outs[i];
    out.attempt = d.attempt;
    out.first_page = d.first_page;
    out.pages_total = d.job->pages_size();
    out.pages_confirmed_total = d.first_page - 1;
    auto doc_pages = PreparePages(*d.job, d.first_page);
    if (!doc_pages.ok()) {
      if (!IsDocumentProblem(doc_pages.status())) return doc_pages.status();
      // Recorded like a call so the job ends once, with its reason, and is never retried.
      out.completion_code = -1;
      out.completion_name = "document_error";
      out.classification =
          Classification{v1::STATE_FAILED, v1::REASON_DOCUMENT_ERROR, doc_pages.status().message()};
      FF_LOG_WARN(logger, "{}: job {} not dialled: {}", options_.name, d.job->job_id(),
                  doc_pages.status().ToString());
      continue;
    }
    call_first[i] = static_cast<int32_t>(pages.size()) + 1;
    call_count[i] = static_cast<int32_t>(doc_pages->size());
    in_call.push_back(i);
    for (auto& p : *doc_pages) pages.push_back(std::move(p));
  }
  if (in_call.empty()) {
    // Nothing to send: the ledger still records the attempt (before_dial) of every job.
    if (hooks.before_dial) FF_RETURN_IF_ERROR(hooks.before_dial());
    return outs;
  }
  const v1::OutboundJob& lead = *documents[in_call.front()].job;
  std::string joined;
  {
    auto j = pages::JoinPages(pages);
    if (!j.ok()) return j.status().WithContext("joining the call's pages");
    joined = std::move(*j);
  }
  if (plan.normal_resolution) {
    auto normal = pages::ToNormalResolution(joined);
    if (!normal.ok()) return normal.status().WithContext("converting to normal resolution");
    joined = std::move(*normal);
  }
  std::error_code ec;
  std::filesystem::create_directories(options_.work_dir, ec);
  // Unique per channel and job: several workers may share a work dir.
  std::string safe_id;
  for (char c : lead.job_id())
    safe_id += std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ? c : '_';
  const std::string path = options_.work_dir + "/" + options_.name + "-" + safe_id + "-p" +
                           std::to_string(documents[in_call.front()].first_page) + ".tif";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(joined.data(), static_cast<std::streamsize>(joined.size()));
    out.close();
    if (!out) return Status::Retryable(Code::kIoError, "cannot write " + path);
  }

  FaxCallOptions call;
  call.tiff_path = path;
  call.ident = lead.tsi().empty() ? options_.local_ident : lead.tsi();
  if (!ValidateIdent(call.ident).ok()) {
    FF_LOG_WARN(logger, "{}: job {} has an invalid TSI '{}', using '{}'", options_.name, lead.job_id(),
                lead.tsi(), options_.local_ident);
    call.ident = options_.local_ident;
  }
  call.header_info = lead.header_text();
  call.ecm = plan.ecm >= 0 ? plan.ecm != 0 : options_.ecm;
  call.modems = plan.modems != 0 ? plan.modems : options_.modems;
  call.call_timeout_seconds = options_.call_timeout_seconds;
  call.wall_timeout_seconds = options_.wall_timeout_seconds;
  call.log_tag = options_.name;

  CallRequest request;
  request.number = lead.number();
  request.job_id = lead.job_id();
  request.attempt = documents[in_call.front()].attempt;
  request.first_page = documents[in_call.front()].first_page;
  request.pages_total = lead.pages_size();
  request.should_abort = hooks.should_abort;
  if (in_call.size() > 1) {
    for (size_t i : in_call)
      request.documents.push_back(CallDocumentInfo{documents[i].job->job_id(), documents[i].attempt,
                                                   documents[i].first_page, call_count[i]});
  }

  // Page c of the call -> (document, page of its fax).
  auto locate = [&](int call_page) -> std::pair<size_t, int32_t> {
    for (size_t i : in_call)
      if (call_page >= call_first[i] && call_page < call_first[i] + call_count[i])
        return {i, documents[i].first_page + (call_page - call_first[i])};
    return {documents.size(), 0};
  };
  FaxCallHooks call_hooks;
  call_hooks.before_dial = hooks.before_dial;
  call_hooks.should_abort = hooks.should_abort;
  call_hooks.on_connected = hooks.on_connected;
  call_hooks.on_confirmed = [&](int page_in_file) {
    auto [doc, page] = locate(page_in_file);
    if (doc < documents.size() && hooks.on_page_confirmed) hooks.on_page_confirmed(doc, page);
  };
  auto result = RunFaxCall(line_, request, call, clock_, call_hooks);
  std::filesystem::remove(path, ec);
  if (!result.ok()) return result.status();

  const FaxCallResult& r = *result;
  for (size_t i : in_call) {
    AttemptOutcome& out = outs[i];
    const int32_t offset = documents[i].first_page - 1;
    const int32_t mine = std::clamp(r.pages_confirmed - (call_first[i] - 1), 0, call_count[i]);
    out.dialled = true;
    out.setup = r.setup;
    out.completion_code = r.completion_code;
    out.completion_name = r.setup == CallSetup::kAnswered ? CompletionCodeName(r.completion_code)
                                                          : std::string(CallSetupName(r.setup));
    out.pages_confirmed_call = mine;
    out.pages_confirmed_total = offset + mine;
    out.remote_csid = r.remote_csid;
    out.bit_rate = r.stats.bit_rate;
    out.ecm = r.stats.ecm;
    out.line_ms = r.line_ms;
    out.setup_ms = r.setup_ms;
    out.watchdog = r.watchdog;
    out.aborted = r.aborted;
    out.wall_seconds = r.wall_seconds;
    out.t38 = r.t38;

    CallFacts facts;
    facts.setup = r.setup;
    facts.completion_code = r.completion_code;
    facts.phase_b_seen = r.phase_b_seen;
    facts.watchdog = r.watchdog || r.aborted;
    facts.pages_confirmed = out.pages_confirmed_total;
    facts.pages_total = out.pages_total;
    if (in_call.size() > 1 && r.setup == CallSetup::kAnswered && out.pages_total > 0 &&
        out.pages_confirmed_total >= out.pages_total) {
      // Every page of this document was confirmed (MCF): delivered, whatever happened to the
      // call later in another document's pages.
      facts.completion_code = T30_ERR_OK;
      facts.watchdog = false;
      out.aborted = false;
    }
    out.classification = Classify(facts);
    if (r.setup != CallSetup::kAnswered && !r.setup_detail.empty())
      out.classification.detail += " (" + r.setup_detail + ")";
  }
  return outs;
}

}  // namespace faxflow::modem
