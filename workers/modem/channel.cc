#include "workers/modem/channel.h"

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

Result<std::string> Channel::PrepareDocument(const v1::OutboundJob& job, int32_t first_page) {
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
  FF_ASSIGN_OR_RETURN(std::string joined, pages::JoinPages(pages));
  std::error_code ec;
  std::filesystem::create_directories(options_.work_dir, ec);
  // Unique per channel and job: several workers may share a work dir.
  std::string safe_id;
  for (char c : job.job_id())
    safe_id += std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ? c : '_';
  const std::string path =
      options_.work_dir + "/" + options_.name + "-" + safe_id + "-p" + std::to_string(first_page) + ".tif";
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(joined.data(), static_cast<std::streamsize>(joined.size()));
  out.close();
  if (!out) return Status::Retryable(Code::kIoError, "cannot write " + path);
  return path;
}

Result<AttemptOutcome> Channel::RunAttempt(const v1::OutboundJob& job, const AttemptPlan& plan,
                                           const AttemptHooks& hooks) {
  static const auto logger = Logger("modem");
  AttemptOutcome out;
  out.attempt = plan.attempt;
  out.first_page = plan.first_page;
  out.pages_total = job.pages_size();
  out.pages_confirmed_total = plan.first_page - 1;

  auto document = PrepareDocument(job, plan.first_page);
  if (!document.ok()) {
    if (!IsDocumentProblem(document.status())) return document.status();
    // Recorded like a call so the job ends once, with its reason, and is never retried.
    if (hooks.before_dial) FF_RETURN_IF_ERROR(hooks.before_dial());
    out.completion_code = -1;
    out.completion_name = "document_error";
    out.classification =
        Classification{v1::STATE_FAILED, v1::REASON_DOCUMENT_ERROR, document.status().message()};
    FF_LOG_WARN(logger, "{}: job {} not dialled: {}", options_.name, job.job_id(),
                document.status().ToString());
    return out;
  }

  FaxCallOptions call;
  call.tiff_path = *document;
  call.ident = job.tsi().empty() ? options_.local_ident : job.tsi();
  if (!ValidateIdent(call.ident).ok()) {
    FF_LOG_WARN(logger, "{}: job {} has an invalid TSI '{}', using '{}'", options_.name, job.job_id(),
                job.tsi(), options_.local_ident);
    call.ident = options_.local_ident;
  }
  call.header_info = job.header_text();
  call.ecm = plan.ecm >= 0 ? plan.ecm != 0 : options_.ecm;
  call.modems = plan.modems != 0 ? plan.modems : options_.modems;
  call.call_timeout_seconds = options_.call_timeout_seconds;
  call.wall_timeout_seconds = options_.wall_timeout_seconds;
  call.log_tag = options_.name;

  CallRequest request;
  request.number = job.number();
  request.job_id = job.job_id();
  request.attempt = plan.attempt;
  request.first_page = plan.first_page;
  request.pages_total = job.pages_size();

  FaxCallHooks call_hooks;
  call_hooks.before_dial = hooks.before_dial;
  call_hooks.should_abort = hooks.should_abort;
  call_hooks.on_connected = hooks.on_connected;
  const int32_t offset = plan.first_page - 1;
  call_hooks.on_confirmed = [&](int page_in_file) {
    if (hooks.on_page_confirmed) hooks.on_page_confirmed(offset + page_in_file);
  };
  auto result = RunFaxCall(line_, request, call, clock_, call_hooks);
  std::error_code ec;
  std::filesystem::remove(*document, ec);
  if (!result.ok()) return result.status();

  const FaxCallResult& r = *result;
  out.dialled = true;
  out.setup = r.setup;
  out.completion_code = r.completion_code;
  out.completion_name = r.setup == CallSetup::kAnswered ? CompletionCodeName(r.completion_code)
                                                        : std::string(CallSetupName(r.setup));
  out.pages_confirmed_call = r.pages_confirmed;
  out.pages_confirmed_total = offset + r.pages_confirmed;
  out.remote_csid = r.remote_csid;
  out.bit_rate = r.stats.bit_rate;
  out.ecm = r.stats.ecm;
  out.line_ms = r.line_ms;
  out.setup_ms = r.setup_ms;
  out.watchdog = r.watchdog;
  out.aborted = r.aborted;
  out.wall_seconds = r.wall_seconds;

  CallFacts facts;
  facts.setup = r.setup;
  facts.completion_code = r.completion_code;
  facts.phase_b_seen = r.phase_b_seen;
  facts.watchdog = r.watchdog || r.aborted;
  facts.pages_confirmed = out.pages_confirmed_total;
  facts.pages_total = out.pages_total;
  out.classification = Classify(facts);
  if (r.setup != CallSetup::kAnswered && !r.setup_detail.empty())
    out.classification.detail += " (" + r.setup_detail + ")";
  return out;
}

}  // namespace faxflow::modem
