// Unit: the classification table (call setup + T.30 completion code + pages -> state, reason).
#include "workers/modem/outcome.h"

#include <gtest/gtest.h>
#include <spandsp.h>

namespace faxflow::modem {
namespace {

Classification Answered(int code, int confirmed, int total, bool phase_b = true, bool watchdog = false) {
  CallFacts f;
  f.setup = CallSetup::kAnswered;
  f.completion_code = code;
  f.pages_confirmed = confirmed;
  f.pages_total = total;
  f.phase_b_seen = phase_b;
  f.watchdog = watchdog;
  return Classify(f);
}

void ExpectClass(const Classification& c, v1::RecipientState state, v1::FailureReason reason) {
  EXPECT_EQ(v1::RecipientState_Name(c.state), v1::RecipientState_Name(state)) << c.detail;
  EXPECT_EQ(v1::FailureReason_Name(c.reason), v1::FailureReason_Name(reason)) << c.detail;
}

TEST(ClassifyTest, OkWithEveryPageIsDelivered) {
  ExpectClass(Answered(T30_ERR_OK, 5, 5), v1::STATE_DELIVERED, v1::REASON_UNSPECIFIED);
}

TEST(ClassifyTest, OkWithFewerPagesIsPartial) {
  ExpectClass(Answered(T30_ERR_OK, 4, 5), v1::STATE_PARTIAL, v1::REASON_DROPPED);
}

TEST(ClassifyTest, CallSetupResults) {
  CallFacts f;
  f.setup = CallSetup::kBusy;
  ExpectClass(Classify(f), v1::STATE_FAILED, v1::REASON_BUSY);
  f.setup = CallSetup::kNoAnswer;
  ExpectClass(Classify(f), v1::STATE_FAILED, v1::REASON_NO_ANSWER);
  f.setup = CallSetup::kRejected;
  ExpectClass(Classify(f), v1::STATE_FAILED, v1::REASON_NOT_A_FAX);
  f.setup = CallSetup::kError;
  ExpectClass(Classify(f), v1::STATE_FAILED, v1::REASON_INTERNAL);
}

TEST(ClassifyTest, NotAFax) {
  for (int code : {T30_ERR_T0_EXPIRED, T30_ERR_TX_NODIS, T30_ERR_TX_GOTDCN, T30_ERR_CEDTONE})
    ExpectClass(Answered(code, 0, 5, false), v1::STATE_FAILED, v1::REASON_NOT_A_FAX);
  // Hung up by the far end before any DIS: a person or machine that is not a fax.
  ExpectClass(Answered(T30_ERR_CALLDROPPED, 0, 5, /*phase_b=*/false), v1::STATE_FAILED, v1::REASON_NOT_A_FAX);
}

TEST(ClassifyTest, TrainingFailures) {
  for (int code : {T30_ERR_CANNOT_TRAIN, T30_ERR_TX_BADDCS, T30_ERR_TX_PHBDEAD, T30_ERR_HDLC_CARRIER,
                   T30_ERR_T1_EXPIRED})
    ExpectClass(Answered(code, 0, 5), v1::STATE_FAILED, v1::REASON_TRAINING_FAILED);
}

TEST(ClassifyTest, CapabilityMismatch) {
  for (int code : {T30_ERR_INCOMPATIBLE, T30_ERR_RX_INCAPABLE, T30_ERR_NORESSUPPORT, T30_ERR_NOSIZESUPPORT,
                   T30_ERR_IDENT_UNACCEPTABLE, T30_ERR_PWD_UNACCEPTABLE, T30_ERR_CSA_UNACCEPTABLE})
    ExpectClass(Answered(code, 0, 5), v1::STATE_FAILED, v1::REASON_CAPABILITY_MISMATCH);
}

TEST(ClassifyTest, DropsArePartialWhenAPageWasConfirmedElseFailed) {
  for (int code : {T30_ERR_TX_PHDDEAD, T30_ERR_TX_BADPG, T30_ERR_TX_INVALRSP, T30_ERR_TX_ECMPHD,
                   T30_ERR_TX_T5EXP, T30_ERR_RETRYDCN, T30_ERR_CALLDROPPED, T30_ERR_UNEXPECTED}) {
    SCOPED_TRACE(CompletionCodeName(code));
    ExpectClass(Answered(code, 2, 5), v1::STATE_PARTIAL, v1::REASON_DROPPED);
    ExpectClass(Answered(code, 0, 5), v1::STATE_FAILED, v1::REASON_DROPPED);
  }
}

TEST(ClassifyTest, DocumentErrors) {
  for (int code : {T30_ERR_FILEERROR, T30_ERR_NOPAGE, T30_ERR_BADTIFF, T30_ERR_BADPAGE, T30_ERR_BADTAG,
                   T30_ERR_BADTIFFHDR, T30_ERR_NOMEM})
    ExpectClass(Answered(code, 0, 5), v1::STATE_FAILED, v1::REASON_DOCUMENT_ERROR);
}

TEST(ClassifyTest, WatchdogIsDroppedWhateverTheCode) {
  ExpectClass(Answered(T30_ERR_CALLDROPPED, 0, 5, false, /*watchdog=*/true), v1::STATE_FAILED,
              v1::REASON_DROPPED);
  ExpectClass(Answered(T30_ERR_OK, 3, 5, true, /*watchdog=*/true), v1::STATE_PARTIAL, v1::REASON_DROPPED);
}

TEST(ClassifyTest, ReceiverSideCodesAreProtocolErrors) {
  ExpectClass(Answered(T30_ERR_RX_DCNDATA, 0, 5), v1::STATE_FAILED, v1::REASON_PROTOCOL_ERROR);
}

TEST(CompletionCodeNameTest, StableNamesMatchSpanDsp) {
  EXPECT_EQ(CompletionCodeName(T30_ERR_OK), "T30_ERR_OK");
  EXPECT_EQ(CompletionCodeName(T30_ERR_T0_EXPIRED), "T30_ERR_T0_EXPIRED");
  EXPECT_EQ(CompletionCodeName(T30_ERR_TX_PHDDEAD), "T30_ERR_TX_PHDDEAD");
  EXPECT_EQ(CompletionCodeName(T30_ERR_FILEERROR), "T30_ERR_FILEERROR");
  EXPECT_EQ(CompletionCodeName(T30_ERR_CALLDROPPED), "T30_ERR_CALLDROPPED");
  EXPECT_EQ(CompletionCodeName(T30_ERR_CSA_UNACCEPTABLE), "T30_ERR_CSA_UNACCEPTABLE");
  EXPECT_EQ(CompletionCodeName(999), "T30_ERR_999");
  EXPECT_FALSE(CompletionCodeText(T30_ERR_OK).empty());
}

}  // namespace
}  // namespace faxflow::modem
