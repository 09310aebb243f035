// Unit: the sim far end's directory and behaviour parser (config `sim.behaviours`).
#include <gtest/gtest.h>

#include "common/clock.h"
#include "common/config.h"
#include "workers/modem/modem_worker.h"
#include "workers/modem/sim_far_end.h"
#include "workers/modem/sim_line.h"

namespace faxflow::modem {
namespace {

TEST(ParseBehaviourTest, KnownBehaviours) {
  EXPECT_EQ(ParseBehaviour("answer")->kind, FarEndKind::kAnswer);
  EXPECT_EQ(ParseBehaviour(" busy ")->kind, FarEndKind::kBusy);
  EXPECT_EQ(ParseBehaviour("no_answer")->kind, FarEndKind::kNoAnswer);
  EXPECT_EQ(ParseBehaviour("voice")->kind, FarEndKind::kVoice);
  EXPECT_EQ(ParseBehaviour("silence")->kind, FarEndKind::kSilence);
  EXPECT_EQ(ParseBehaviour("train_fail:v17")->kind, FarEndKind::kTrainFail);
  EXPECT_FALSE(ParseBehaviour("train_fail:v17")->fail_ecm);
  EXPECT_TRUE(ParseBehaviour("train_fail:v17+ecm")->fail_ecm);
  EXPECT_EQ(ParseBehaviour("train_fail:v17+ecm")->ToString(), "train_fail:v17+ecm");
  EXPECT_FALSE(ParseBehaviour("train_fail:9600").ok());
  auto drop = ParseBehaviour("drop_after:3");
  ASSERT_TRUE(drop.ok());
  EXPECT_EQ(drop->kind, FarEndKind::kDropAfter);
  EXPECT_EQ(drop->drop_after_pages, 3);
  EXPECT_EQ(drop->ToString(), "drop_after:3");
}

TEST(ParseBehaviourTest, BadBehavioursNameTheProblem) {
  for (const char* bad :
       {"", "fax", "drop_after", "drop_after:", "drop_after:0", "drop_after:x", "drop_after:2x"}) {
    auto r = ParseBehaviour(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  }
  EXPECT_NE(ParseBehaviour("fax").status().message().find("unknown sim behaviour 'fax'"), std::string::npos);
}

TEST(SimDirectoryTest, BuiltInNumbers) {
  auto dir = SimDirectory::Create("");
  ASSERT_TRUE(dir.ok());
  EXPECT_EQ(dir->Lookup("+15550100000").kind, FarEndKind::kAnswer);
  EXPECT_EQ(dir->Lookup("+15550100001").kind, FarEndKind::kBusy);
  EXPECT_EQ(dir->Lookup("+15550100002").kind, FarEndKind::kNoAnswer);
  EXPECT_EQ(dir->Lookup("+15550100003").kind, FarEndKind::kVoice);
  EXPECT_EQ(dir->Lookup("+15550100004").kind, FarEndKind::kSilence);
  EXPECT_EQ(dir->Lookup("+15550100005"), (FarEndBehaviour{FarEndKind::kDropAfter, 2}));
  EXPECT_EQ(dir->Lookup("+4930123456").kind, FarEndKind::kAnswer) << "unlisted numbers answer";
  EXPECT_EQ(dir->Lookup("1 555 010-0001").kind, FarEndKind::kBusy) << "matched on digits";
}

TEST(SimDirectoryTest, ConfigEntriesAddAndOverride) {
  auto dir = SimDirectory::Create(" +15551230001=busy ; +15551230002=drop_after:4;;+15550100001=answer;");
  ASSERT_TRUE(dir.ok()) << dir.status().ToString();
  EXPECT_EQ(dir->Lookup("+15551230001").kind, FarEndKind::kBusy);
  EXPECT_EQ(dir->Lookup("+15551230002"), (FarEndBehaviour{FarEndKind::kDropAfter, 4}));
  EXPECT_EQ(dir->Lookup("+15550100001").kind, FarEndKind::kAnswer);
}

TEST(SimDirectoryTest, ConfigErrorsNameTheEntry) {
  auto missing_eq = SimDirectory::Create("+15551230001=busy;+15551230002");
  ASSERT_FALSE(missing_eq.ok());
  EXPECT_NE(missing_eq.status().message().find("entry 2"), std::string::npos)
      << missing_eq.status().message();
  auto bad_number = SimDirectory::Create("fax-machine=busy");
  ASSERT_FALSE(bad_number.ok());
  EXPECT_NE(bad_number.status().message().find("not a phone number"), std::string::npos);
  auto bad_behaviour = SimDirectory::Create("+15551230001=bussy");
  ASSERT_FALSE(bad_behaviour.ok());
  EXPECT_NE(bad_behaviour.status().message().find("bussy"), std::string::npos);
}

TEST(SimCallRecordTest, JsonLineEscapes) {
  SimCallRecord r;
  r.number = "+15550100000";
  r.job_id = "job\"1";
  r.attempt = 2;
  r.behaviour = "answer";
  r.pages_received = 5;
  r.completion = "T30_ERR_OK";
  EXPECT_EQ(ToJsonLine(r),
            "{\"number\":\"+15550100000\",\"job_id\":\"job\\\"1\",\"attempt\":2,\"behaviour\":\"answer\","
            "\"pages_received\":5,\"received_path\":\"\",\"completion\":\"T30_ERR_OK\",\"line_ms\":0}\n");
}

}  // namespace
}  // namespace faxflow::modem

namespace faxflow::modem {
namespace {

TEST(ModemOptionsTest, FromConfigDefaults) {
  Config config = DefaultConfig();
  config.data_dir = "/var/lib/faxflow";
  ModemOptions o = ModemOptions::FromConfig(config);
  EXPECT_EQ(o.channels, 4);
  EXPECT_EQ(o.call_timeout_seconds, 900);
  EXPECT_EQ(o.local_ident, "faxflow");
  EXPECT_EQ(o.line_name, "sim");
  EXPECT_EQ(o.sim.received_dir, "/var/lib/faxflow/received");
  EXPECT_EQ(o.work_dir, "/var/lib/faxflow/modem-work");
  EXPECT_FALSE(o.sim.realtime);
}

TEST(ModemOptionsTest, UnknownLineDriverAndBadBehavioursAreErrors) {
  SystemClock clock;
  ModemOptions o;
  o.line_name = "t38";
  auto t38 = MakeLineDriver(o, clock);
  ASSERT_FALSE(t38.ok());
  EXPECT_NE(t38.status().message().find("'t38'"), std::string::npos);
  o.line_name = "sim";
  o.sim_behaviours = "+15551230001=bussy";
  auto bad = MakeLineDriver(o, clock);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace faxflow::modem
