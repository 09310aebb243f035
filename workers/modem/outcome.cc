#include "workers/modem/outcome.h"

#include <spandsp.h>

#include <array>

namespace faxflow::modem {
namespace {

// 0.0.6 enum order (t30.h). Stored by name because newer SpanDSP versions inserted codes.
constexpr std::array<std::string_view, 62> kNames = {"T30_ERR_OK",
                                                     "T30_ERR_CEDTONE",
                                                     "T30_ERR_T0_EXPIRED",
                                                     "T30_ERR_T1_EXPIRED",
                                                     "T30_ERR_T3_EXPIRED",
                                                     "T30_ERR_HDLC_CARRIER",
                                                     "T30_ERR_CANNOT_TRAIN",
                                                     "T30_ERR_OPER_INT_FAIL",
                                                     "T30_ERR_INCOMPATIBLE",
                                                     "T30_ERR_RX_INCAPABLE",
                                                     "T30_ERR_TX_INCAPABLE",
                                                     "T30_ERR_NORESSUPPORT",
                                                     "T30_ERR_NOSIZESUPPORT",
                                                     "T30_ERR_UNEXPECTED",
                                                     "T30_ERR_TX_BADDCS",
                                                     "T30_ERR_TX_BADPG",
                                                     "T30_ERR_TX_ECMPHD",
                                                     "T30_ERR_TX_GOTDCN",
                                                     "T30_ERR_TX_INVALRSP",
                                                     "T30_ERR_TX_NODIS",
                                                     "T30_ERR_TX_PHBDEAD",
                                                     "T30_ERR_TX_PHDDEAD",
                                                     "T30_ERR_TX_T5EXP",
                                                     "T30_ERR_RX_ECMPHD",
                                                     "T30_ERR_RX_GOTDCS",
                                                     "T30_ERR_RX_INVALCMD",
                                                     "T30_ERR_RX_NOCARRIER",
                                                     "T30_ERR_RX_NOEOL",
                                                     "T30_ERR_RX_NOFAX",
                                                     "T30_ERR_RX_T2EXPDCN",
                                                     "T30_ERR_RX_T2EXPD",
                                                     "T30_ERR_RX_T2EXPFAX",
                                                     "T30_ERR_RX_T2EXPMPS",
                                                     "T30_ERR_RX_T2EXPRR",
                                                     "T30_ERR_RX_T2EXP",
                                                     "T30_ERR_RX_DCNWHY",
                                                     "T30_ERR_RX_DCNDATA",
                                                     "T30_ERR_RX_DCNFAX",
                                                     "T30_ERR_RX_DCNPHD",
                                                     "T30_ERR_RX_DCNRRD",
                                                     "T30_ERR_RX_DCNNORTN",
                                                     "T30_ERR_FILEERROR",
                                                     "T30_ERR_NOPAGE",
                                                     "T30_ERR_BADTIFF",
                                                     "T30_ERR_BADPAGE",
                                                     "T30_ERR_BADTAG",
                                                     "T30_ERR_BADTIFFHDR",
                                                     "T30_ERR_NOMEM",
                                                     "T30_ERR_RETRYDCN",
                                                     "T30_ERR_CALLDROPPED",
                                                     "T30_ERR_NOPOLL",
                                                     "T30_ERR_IDENT_UNACCEPTABLE",
                                                     "T30_ERR_SUB_UNACCEPTABLE",
                                                     "T30_ERR_SEP_UNACCEPTABLE",
                                                     "T30_ERR_PSA_UNACCEPTABLE",
                                                     "T30_ERR_SID_UNACCEPTABLE",
                                                     "T30_ERR_PWD_UNACCEPTABLE",
                                                     "T30_ERR_TSA_UNACCEPTABLE",
                                                     "T30_ERR_IRA_UNACCEPTABLE",
                                                     "T30_ERR_CIA_UNACCEPTABLE",
                                                     "T30_ERR_ISP_UNACCEPTABLE",
                                                     "T30_ERR_CSA_UNACCEPTABLE"};

static_assert(T30_ERR_OK == 0 && T30_ERR_CALLDROPPED == 49 && T30_ERR_CSA_UNACCEPTABLE == 61,
              "SpanDSP completion code order differs from 0.0.6: update kNames");

Classification Make(v1::RecipientState state, v1::FailureReason reason, std::string detail) {
  return Classification{state, reason, std::move(detail)};
}

std::string PagesText(const CallFacts& f) {
  return std::to_string(f.pages_confirmed) + "/" + std::to_string(f.pages_total) + " pages confirmed";
}

Classification Dropped(const CallFacts& f, const std::string& why) {
  if (f.pages_confirmed > 0) return Make(v1::STATE_PARTIAL, v1::REASON_DROPPED, why + "; " + PagesText(f));
  return Make(v1::STATE_FAILED, v1::REASON_DROPPED, why + "; no page confirmed");
}

}  // namespace

std::string CompletionCodeName(int code) {
  if (code >= 0 && static_cast<size_t>(code) < kNames.size())
    return std::string(kNames[static_cast<size_t>(code)]);
  return "T30_ERR_" + std::to_string(code);
}

std::string CompletionCodeText(int code) {
  const char* s = t30_completion_code_to_str(code);
  return s ? s : "";
}

std::string_view CallSetupName(CallSetup setup) {
  switch (setup) {
    case CallSetup::kAnswered:
      return "answered";
    case CallSetup::kBusy:
      return "busy";
    case CallSetup::kNoAnswer:
      return "no_answer";
    case CallSetup::kRejected:
      return "rejected";
    case CallSetup::kError:
      return "error";
  }
  return "unknown";
}

Classification Classify(const CallFacts& f) {
  switch (f.setup) {
    case CallSetup::kAnswered:
      break;
    case CallSetup::kBusy:
      return Make(v1::STATE_FAILED, v1::REASON_BUSY, "line busy");
    case CallSetup::kNoAnswer:
      return Make(v1::STATE_FAILED, v1::REASON_NO_ANSWER, "no answer");
    case CallSetup::kRejected:
      return Make(v1::STATE_FAILED, v1::REASON_NOT_A_FAX, "call rejected by the network");
    case CallSetup::kError:
      return Make(v1::STATE_FAILED, v1::REASON_INTERNAL, "call setup failed");
  }
  const std::string code = CompletionCodeName(f.completion_code);
  if (f.watchdog) return Dropped(f, "call watchdog expired (" + code + ")");
  switch (f.completion_code) {
    case T30_ERR_OK:
      if (f.pages_total > 0 && f.pages_confirmed >= f.pages_total)
        return Make(v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED,
                    "all " + std::to_string(f.pages_total) + " pages confirmed");
      return Dropped(f, "T.30 completed but not every page was confirmed");
    case T30_ERR_CEDTONE:
    case T30_ERR_T0_EXPIRED:
    case T30_ERR_TX_NODIS:
    case T30_ERR_TX_GOTDCN:
      return Make(v1::STATE_FAILED, v1::REASON_NOT_A_FAX, "no fax machine answered (" + code + ")");
    case T30_ERR_CANNOT_TRAIN:
    case T30_ERR_TX_BADDCS:
    case T30_ERR_TX_PHBDEAD:
    case T30_ERR_HDLC_CARRIER:
    case T30_ERR_T1_EXPIRED:
      if (f.pages_confirmed > 0) return Dropped(f, "training failed mid-call (" + code + ")");
      return Make(v1::STATE_FAILED, v1::REASON_TRAINING_FAILED, "modem training failed (" + code + ")");
    case T30_ERR_INCOMPATIBLE:
    case T30_ERR_RX_INCAPABLE:
    case T30_ERR_TX_INCAPABLE:
    case T30_ERR_NORESSUPPORT:
    case T30_ERR_NOSIZESUPPORT:
      if (f.pages_confirmed > 0) return Dropped(f, "far end refused a later page (" + code + ")");
      return Make(v1::STATE_FAILED, v1::REASON_CAPABILITY_MISMATCH,
                  "far end cannot receive this fax (" + code + ")");
    case T30_ERR_TX_PHDDEAD:
    case T30_ERR_TX_BADPG:
    case T30_ERR_TX_INVALRSP:
    case T30_ERR_TX_ECMPHD:
    case T30_ERR_TX_T5EXP:
    case T30_ERR_RETRYDCN:
    case T30_ERR_UNEXPECTED:
      return Dropped(f, "call failed mid-transfer (" + code + ")");
    case T30_ERR_CALLDROPPED:
      if (!f.phase_b_seen && f.pages_confirmed == 0)
        return Make(v1::STATE_FAILED, v1::REASON_NOT_A_FAX, "far end hung up before any fax handshake");
      return Dropped(f, "call dropped (" + code + ")");
    case T30_ERR_FILEERROR:
    case T30_ERR_NOPAGE:
    case T30_ERR_BADTIFF:
    case T30_ERR_BADPAGE:
    case T30_ERR_BADTAG:
    case T30_ERR_BADTIFFHDR:
    case T30_ERR_NOMEM:
      return Make(v1::STATE_FAILED, v1::REASON_DOCUMENT_ERROR,
                  "the fax document could not be sent (" + code + ")");
    default:
      break;
  }
  if (f.completion_code >= T30_ERR_IDENT_UNACCEPTABLE && f.completion_code <= T30_ERR_CSA_UNACCEPTABLE)
    return Make(v1::STATE_FAILED, v1::REASON_CAPABILITY_MISMATCH,
                "far end refused our identification (" + code + ")");
  if (f.pages_confirmed > 0) return Dropped(f, "unexpected T.30 outcome (" + code + ")");
  return Make(v1::STATE_FAILED, v1::REASON_PROTOCOL_ERROR, "unexpected T.30 outcome (" + code + ")");
}

bool IsTerminal(const Classification& c, int32_t attempt) {
  (void)attempt;  // retry scheduling comes later; every outcome ends the job for now.
  return c.state != v1::STATE_SENDING;
}

}  // namespace faxflow::modem
