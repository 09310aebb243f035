// Enterprise ingestion from fax.ingest on the real embedded bus, real RocksDB blob and status
// stores, the real document sniffer and real HTTP servers on loopback. Covers the JSON and
// Protobuf forms, the three document sources, the dead-letter path of every malformed record
// (the consumer keeps going) and the SSRF guard of the URL fetcher.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/ids.h"
#include "producers/gateway/submission_service.h"
#include "producers/ingest/ingest_record.h"
#include "producers/ingest/ingest_worker.h"
#include "producers/ingest/url_fetcher.h"
#include "storage/blob_store.h"
#include "storage/status_store.h"
#include "tests/support/support.h"
#include "topics/catalogue.h"
#include "topics/embedded/embedded_bus.h"
#include "workers/imaging/sniff.h"

namespace faxflow::ingest {
namespace {

using namespace std::chrono_literals;
using testing::CountingListener;
using faxflow::testing::Await;
using faxflow::testing::TempDir;

const std::string kText = "Invoice 42\nPlease pay.\n";


// An HTTP server on a loopback address serving documents and redirects.
class DocServer {
 public:
  explicit DocServer(const std::string& host = "127.0.0.1") : host_(host) {
    server_.Get("/invoice.txt", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(kText, "text/plain");
    });
    server_.Get("/big.txt", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(4096, 'x'), "text/plain");
    });
    server_.Get("/flaky.txt", [this](const httplib::Request&, httplib::Response& res) {
      if (++flaky_calls_ <= 2) {
        res.status = 503;
        return;
      }
      res.set_content(kText, "text/plain");
    });
    // /chain/N redirects N more times, then serves the document.
    server_.Get(R"(/chain/(\d+))", [](const httplib::Request& req, httplib::Response& res) {
      const int n = std::stoi(req.matches[1]);
      if (n == 0) {
        res.set_content(kText, "text/plain");
        return;
      }
      res.set_redirect("/chain/" + std::to_string(n - 1));
    });
    server_.Get("/to", [](const httplib::Request& req, httplib::Response& res) {
      res.set_redirect(req.get_param_value("u"));
    });
    port_ = server_.bind_to_any_port(host_);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    EXPECT_TRUE(Await([this] { return server_.is_running(); }, 5s));
  }
  ~DocServer() {
    server_.stop();
    thread_.join();
  }
  std::string Url(const std::string& path) const { return "http://" + host_ + ":" + std::to_string(port_) + path; }
  int port() const { return port_; }
  int flaky_calls() const { return flaky_calls_; }

 private:
  std::string host_;
  httplib::Server server_;
  int port_ = 0;
  std::atomic<int> flaky_calls_{0};
  std::thread thread_;
};

// Reads every record of a topic from the start with a private group.
class TopicReader {
 public:
  TopicReader(bus::Bus& bus, std::string_view topic) {
    static std::atomic<int> n{0};
    consumer_ = std::move(*bus.NewConsumer({"test-reader-" + std::to_string(n++), "test", true}));
    EXPECT_TRUE(consumer_->Assign(*bus::AllPartitions(bus, std::string(topic))).ok());
  }
  // Waits until at least `count` records were read in total; returns them all.
  const std::vector<bus::Record>& AwaitCount(size_t count, std::chrono::milliseconds timeout = 20s) {
    Await(
        [&] {
          auto polled = consumer_->Poll(50ms, 100);
          if (polled.ok())
            for (auto& r : *polled) records_.push_back(std::move(r));
          return records_.size() >= count;
        },
        timeout, 1ms);
    return records_;
  }

 private:
  std::unique_ptr<bus::Consumer> consumer_;
  std::vector<bus::Record> records_;
};

class IngestTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto b = bus::EmbeddedBus::Open(dir_.path() + "/bus");
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    bus_ = std::move(*b);
    ASSERT_TRUE(bus_->EnsureTopics(bus::Catalogue()).ok());
    auto blobs = OpenRocksBlobStore(dir_.path() + "/blobs", {}, [this] { return clock_.NowMillis(); });
    ASSERT_TRUE(blobs.ok()) << blobs.status().ToString();
    blobs_ = std::move(*blobs);
    auto status = OpenRocksStatusStore(dir_.path() + "/status");
    ASSERT_TRUE(status.ok());
    status_ = std::move(*status);
    producer_ = std::move(*bus_->NewProducer("test"));
    service_producer_ = std::move(*bus_->NewProducer("gateway"));
    service_ = std::make_unique<SubmissionService>(
        SubmissionLimits{}, *service_producer_, *blobs_, *status_, clock_, [](std::string_view content) -> Result<std::string> {
          FF_ASSIGN_OR_RETURN(auto type, imaging::DetectDocumentType(content));
          return std::string(imaging::MimeType(type));
        });
  }
  void TearDown() override {
    if (worker_) worker_->Stop();
  }

  void StartWorker(bool allow_private = true, int64_t max_record_bytes = 64 << 10) {
    UrlFetcherOptions fo;
    fo.allow_private = allow_private;
    fo.timeout = 5s;
    fo.max_bytes = 1 << 20;
    fetcher_ = std::make_unique<UrlFetcher>(fo);
    IngestOptions o;
    o.max_record_bytes = max_record_bytes;
    o.fetch_retries = 2;
    o.fetch_backoff = 10ms;
    o.outage_backoff = 50ms;
    worker_ = std::make_unique<IngestWorker>(o, *bus_, *service_, *blobs_, *fetcher_, registry_, clock_);
    ASSERT_TRUE(worker_->Start().ok());
  }

  void Produce(const std::string& key, const std::string& value, std::vector<bus::Header> headers = {},
               std::optional<int32_t> partition = std::nullopt) {
    bus::Message m;
    m.partition = partition;
    m.topic = std::string(bus::topic::kIngest);
    m.key = key;
    m.value = value;
    m.headers = std::move(headers);
    ASSERT_TRUE(producer_->Produce(m).ok());
  }

  std::vector<v1::Submission> AwaitSubmissions(size_t count) {
    const auto& records = submissions_reader().AwaitCount(count);
    std::vector<v1::Submission> out;
    for (const auto& r : records) {
      v1::Submission s;
      EXPECT_TRUE(s.ParseFromString(r.value));
      out.push_back(s);
    }
    return out;
  }
  TopicReader& submissions_reader() {
    if (!subs_) subs_ = std::make_unique<TopicReader>(*bus_, bus::topic::kSubmissions);
    return *subs_;
  }
  TopicReader& dlq_reader() {
    if (!dlq_) dlq_ = std::make_unique<TopicReader>(*bus_, bus::topic::kDeadLetter);
    return *dlq_;
  }
  double Metric(const std::string& outcome) {
    for (const auto& f : registry_.Collect())
      if (f.name == "faxflow_ingest_records_total")
        for (const auto& m : f.metric)
          for (const auto& l : m.label)
            if (l.name == "outcome" && l.value == outcome) return m.counter.value;
    return -1;
  }

  TempDir dir_;
  SystemClock clock_;
  prometheus::Registry registry_;
  std::unique_ptr<bus::EmbeddedBus> bus_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<StatusStore> status_;
  std::unique_ptr<bus::Producer> producer_;
  std::unique_ptr<bus::Producer> service_producer_;
  std::unique_ptr<SubmissionService> service_;
  std::unique_ptr<UrlFetcher> fetcher_;
  std::unique_ptr<IngestWorker> worker_;
  std::unique_ptr<TopicReader> subs_;
  std::unique_ptr<TopicReader> dlq_;
};

TEST_F(IngestTest, JsonWithBlobIdBecomesASubmissionWithItsRecipientsAndOptions) {
  const std::string blob = *blobs_->Put(kText);
  StartWorker();
  nlohmann::json j = {{"id", "erp-4711"},
                      {"tenant", "acme"},
                      {"to", {"+15550100000", "+1 555 010 0001"}},
                      {"documents", {{{"blob_id", blob}, {"filename", "invoice.txt"}}}},
                      {"options",
                       {{"resolution", "normal"},
                        {"paper", "letter"},
                        {"header_text", "ACME Corp"},
                        {"tsi", "ACME"},
                        {"priority", 7},
                        {"tags", {"invoice", "q3"}}}}};
  Produce("erp-4711", j.dump());
  auto subs = AwaitSubmissions(1);
  ASSERT_EQ(subs.size(), 1u);
  const auto& s = subs[0];
  EXPECT_EQ(s.source(), "ingest");
  EXPECT_EQ(s.tenant(), "acme");
  ASSERT_EQ(s.recipients_size(), 2);
  EXPECT_EQ(s.recipients(0).number(), "+15550100000");
  EXPECT_EQ(s.recipients(1).number(), "+15550100001");
  ASSERT_EQ(s.documents_size(), 1);
  EXPECT_EQ(s.documents(0).blob_id(), blob);
  EXPECT_EQ(s.documents(0).content_type(), "text/plain");
  EXPECT_EQ(s.documents(0).size_bytes(), static_cast<int64_t>(kText.size()));
  EXPECT_EQ(s.documents(0).filename(), "invoice.txt");
  EXPECT_EQ(s.options().resolution(), v1::RESOLUTION_NORMAL);
  EXPECT_EQ(s.options().paper(), v1::PAPER_LETTER);
  EXPECT_EQ(s.options().header_text(), "ACME Corp");
  EXPECT_EQ(s.options().tsi(), "ACME");
  EXPECT_EQ(s.options().priority(), 7);
  ASSERT_EQ(s.options().tags_size(), 2);
  EXPECT_EQ(s.options().tags(1), "q3");
  // Visible to GET like a REST fax.
  EXPECT_TRUE(Await(
      [&] {
        auto st = status_->Get(s.fax_id());
        return st.ok() && st->has_value();
      },
      5s));
  EXPECT_TRUE(Await([&] { return Metric("accepted") == 1; }, 5s));
}

TEST_F(IngestTest, AClientIdMapsToOneFaxSoARepeatedRecordCannotDialTwice) {
  // The same `id` handled twice (a crash between produce and commit, or the client re-sending)
  // must name the same fax and recipients: the modem stage's dial ledger then suppresses the
  // second copy. Another tenant's identical id is another fax; records without an id differ.
  const std::string blob = *blobs_->Put(kText);
  StartWorker();
  auto record = [&](const std::string& tenant, const std::string& id) {
    nlohmann::json j = {{"tenant", tenant}, {"to", {"+15550100000", "+15550100001"}},
                        {"documents", {{{"blob_id", blob}}}}};
    if (!id.empty()) j["id"] = id;
    return j.dump();
  };
  Produce("k", record("acme", "po-77"));
  Produce("k", record("acme", "po-77"));
  Produce("k", record("globex", "po-77"));
  Produce("k", record("acme", ""));
  Produce("k", record("acme", ""));
  auto subs = AwaitSubmissions(5);
  ASSERT_EQ(subs.size(), 5u);
  const std::string acme_fax = ingest::IngestFaxId("acme", "po-77");
  EXPECT_TRUE(LooksLikeId(acme_fax, "fax")) << acme_fax;
  std::vector<const v1::Submission*> acme;
  std::set<std::string> fax_ids;
  for (const auto& sub : subs) {
    fax_ids.insert(sub.fax_id());
    if (sub.fax_id() == acme_fax) acme.push_back(&sub);
  }
  ASSERT_EQ(acme.size(), 2u);
  ASSERT_EQ(acme[0]->recipients_size(), 2);
  for (int i = 0; i < 2; ++i)
    EXPECT_EQ(acme[0]->recipients(i).recipient_id(), acme[1]->recipients(i).recipient_id());
  EXPECT_NE(acme[0]->recipients(0).recipient_id(), acme[0]->recipients(1).recipient_id());
  EXPECT_TRUE(fax_ids.contains(ingest::IngestFaxId("globex", "po-77")));
  EXPECT_EQ(fax_ids.size(), 4u);  // acme/po-77 once, globex/po-77, two records without id
}

TEST_F(IngestTest, ProtobufWithAndWithoutSchemaHeaderIsAccepted) {
  const std::string blob = *blobs_->Put(kText);
  StartWorker();
  v1::Submission in;
  in.set_tenant("acme");
  in.add_recipients()->set_number("+15550100002");
  in.add_documents()->set_blob_id(blob);
  in.mutable_options()->set_paper(v1::PAPER_LETTER);
  Produce("p1", in.SerializeAsString(), {{"faxflow-schema", "faxflow.v1.Submission"}});
  Produce("p2", in.SerializeAsString());  // sniffed: does not start with '{'
  auto subs = AwaitSubmissions(2);
  ASSERT_EQ(subs.size(), 2u);
  for (const auto& s : subs) {
    EXPECT_EQ(s.source(), "ingest");
    EXPECT_EQ(s.tenant(), "acme");
    ASSERT_EQ(s.recipients_size(), 1);
    EXPECT_EQ(s.recipients(0).number(), "+15550100002");
    EXPECT_EQ(s.documents(0).blob_id(), blob);
    EXPECT_EQ(s.options().paper(), v1::PAPER_LETTER);
    EXPECT_EQ(s.options().resolution(), v1::RESOLUTION_FINE);  // default, as for REST
  }
}

TEST_F(IngestTest, Base64ContentIsStoredAsABlob) {
  StartWorker();
  // "Invoice 42\nPlease pay.\n"
  Produce("b64", R"({"to":["+15550100000"],"documents":[{"content_base64":"SW52b2ljZSA0MgpQbGVhc2UgcGF5Lgo=","filename":"i.txt"}]})");
  auto subs = AwaitSubmissions(1);
  ASSERT_EQ(subs.size(), 1u);
  EXPECT_EQ(subs[0].documents(0).blob_id(), BlobId(kText));
  EXPECT_EQ(*blobs_->Get(subs[0].documents(0).blob_id()), kText);
  EXPECT_EQ(subs[0].documents(0).filename(), "i.txt");
}

TEST_F(IngestTest, UrlDocumentIsFetchedFollowingRedirectsAndRetriedWhenTransient) {
  DocServer server;
  StartWorker(/*allow_private=*/true);
  Produce("u1", R"({"to":["+15550100000"],"documents":[{"url":")" + server.Url("/invoice.txt") + R"("}]})");
  Produce("u2", R"({"to":["+15550100000"],"documents":[{"url":")" + server.Url("/chain/3") + R"("}]})");
  Produce("u3", R"({"to":["+15550100000"],"documents":[{"url":")" + server.Url("/flaky.txt") + R"("}]})");
  auto subs = AwaitSubmissions(3);
  ASSERT_EQ(subs.size(), 3u);
  for (const auto& s : subs) {
    EXPECT_EQ(s.documents(0).blob_id(), BlobId(kText));
    EXPECT_EQ(s.documents(0).content_type(), "text/plain");
  }
  // The three records sit on different partitions: their submissions come in any order.
  std::set<std::string> names;
  for (const auto& s : subs) names.insert(s.documents(0).filename());
  EXPECT_TRUE(names.contains("invoice.txt")) << "filename is taken from the URL path";
  EXPECT_EQ(server.flaky_calls(), 3);  // two 503s, then success within fetch_retries = 2
  EXPECT_TRUE(Await([&] { return Metric("accepted") == 3; }, 5s));
  EXPECT_EQ(Metric("retry"), 2);
}

struct BadRecord {
  std::string name;
  std::string value;
  std::string reason;  // expected substring of faxflow-dlq-reason
};

TEST_F(IngestTest, MalformedRecordsAreDeadLetteredWithTheOriginalAndTheConsumerKeepsGoing) {
  const std::string blob = *blobs_->Put(kText);
  const int dead_port = faxflow::testing::FreePort();
  StartWorker(/*allow_private=*/true, /*max_record_bytes=*/64 << 10);
  const std::string doc = R"([{"blob_id":")" + blob + R"("}])";
  std::vector<BadRecord> bad = {
      {"text", "hello, please fax this", "not JSON"},
      {"broken-json", R"({"to": ["+15550100000"], )", "not JSON"},
      {"array", R"([1,2,3])", "not JSON"},  // '[' is not '{': tried as Protobuf, rejected
      {"unknown-field", R"({"to":["+15550100000"],"documents":)" + doc + R"(,"colour":"red"})", "colour: unknown field"},
      {"unknown-doc-field", R"({"to":["+15550100000"],"documents":[{"blob_id":")" + blob + R"(","type":"pdf"}]})",
       "documents[0].type: unknown field"},
      {"to-wrong-type", R"({"to":"+15550100000","documents":)" + doc + "}", "to: expected an array of strings, got string"},
      {"priority-wrong-type", R"({"to":["+15550100000"],"documents":)" + doc + R"(,"options":{"priority":"high"}})",
       "options.priority: expected an integer, got string"},
      {"missing-recipients", R"({"documents":)" + doc + "}", "missing_recipient"},
      {"empty-recipients", R"({"to":[],"documents":)" + doc + "}", "missing_recipient"},
      {"invalid-number", R"({"to":["call me maybe"],"documents":)" + doc + "}", "invalid_number"},
      {"unreachable-url",
       R"({"to":["+15550100000"],"documents":[{"url":"http://127.0.0.1:)" + std::to_string(dead_port) + R"(/x.pdf"}]})",
       "url unreachable"},
      {"oversized", R"({"to":["+15550100000"],"documents":[{"content_base64":")" + std::string(80 << 10, 'A') + R"("}]})",
       "record too large"},
      {"unknown-blob", R"({"to":["+15550100000"],"documents":[{"blob_id":")" + BlobId("never stored") + R"("}]})",
       "unknown blob"},
      {"bad-base64", R"({"to":["+15550100000"],"documents":[{"content_base64":"!!!"}]})", "invalid base64"},
      {"two-sources", R"({"to":["+15550100000"],"documents":[{"blob_id":")" + blob + R"(","url":"http://a/b"}]})",
       "exactly one of"},
      {"unsupported-doc", R"({"to":["+15550100000"],"documents":[{"content_base64":"f0VMRgIBAQAAAAAAAAAAAA=="}]})",
       "unsupported_document"},
      {"bad-schema-header", R"({"to":["+15550100000"],"documents":)" + doc + "}", "unknown faxflow-schema header"},
  };
  for (const auto& b : bad) {
    std::vector<bus::Header> headers = {{"x-origin-system", "erp"}, {"x-case", b.name}};
    if (b.name == "bad-schema-header") headers.push_back({"faxflow-schema", "acme.Order"});
    Produce(b.name, b.value, headers, 0);  // one partition: the good record comes after every bad one
  }
  Produce("good", R"({"to":["+15550100009"],"documents":)" + doc + "}", {}, 0);

  const auto& dead = dlq_reader().AwaitCount(bad.size());
  ASSERT_EQ(dead.size(), bad.size());
  auto subs = AwaitSubmissions(1);
  ASSERT_EQ(subs.size(), 1u);  // the consumer kept going
  EXPECT_EQ(subs[0].recipients(0).number(), "+15550100009");

  std::map<std::string, const bus::Record*> by_case;
  for (const auto& r : dead) by_case[*r.header("x-case")] = &r;
  for (const auto& b : bad) {
    SCOPED_TRACE(b.name);
    ASSERT_TRUE(by_case.count(b.name));
    const bus::Record& r = *by_case[b.name];
    EXPECT_EQ(r.value, b.value);  // the original bytes
    EXPECT_EQ(r.key, b.name);
    ASSERT_NE(r.header("x-origin-system"), nullptr);
    EXPECT_EQ(*r.header("x-origin-system"), "erp");  // the original headers
    const std::string* reason = r.header(bus::header::kReason);
    ASSERT_NE(reason, nullptr);
    EXPECT_NE(reason->find(b.reason), std::string::npos) << *reason;
    const std::string* origin = r.header(bus::header::kOrigin);
    ASSERT_NE(origin, nullptr);
    EXPECT_EQ(origin->rfind("fax.ingest/", 0), 0u) << *origin;
  }
  EXPECT_TRUE(Await([&] { return Metric("accepted") == 1; }, 5s));
  EXPECT_EQ(Metric("dead_letter"), static_cast<double>(bad.size()));
  EXPECT_GE(Metric("retry"), 2);  // the unreachable URL was retried before giving up
}

TEST_F(IngestTest, PrivateUrlIsRefusedWithoutConnectingWhenPrivateTargetsAreNotAllowed) {
  CountingListener target;
  StartWorker(/*allow_private=*/false);
  const std::string url = "http://127.0.0.1:" + std::to_string(target.port()) + "/invoice.pdf";
  Produce("ssrf", R"({"to":["+15550100000"],"documents":[{"url":")" + url + R"("}]})");
  const auto& dead = dlq_reader().AwaitCount(1);
  ASSERT_EQ(dead.size(), 1u);
  const std::string reason = *dead[0].header(bus::header::kReason);
  EXPECT_NE(reason.find("url refused"), std::string::npos) << reason;
  EXPECT_NE(reason.find("loopback"), std::string::npos) << reason;
  EXPECT_EQ(target.accepted(), 0);
  EXPECT_EQ(Metric("retry"), 0);  // refused targets are permanent: no retries
}

TEST_F(IngestTest, RecordsThatWillFailFetchNothing) {
  CountingListener target;
  StartWorker(/*allow_private=*/true);
  const std::string url = R"({"url":"http://127.0.0.1:)" + std::to_string(target.port()) + R"(/d.pdf"})";
  std::string many = "[";
  for (int i = 0; i < 11; ++i) many += (i ? "," : "") + url;
  many += "]";
  Produce("many", R"({"to":["+15550100000"],"documents":)" + many + "}", {}, 0);
  Produce("nobody", R"({"documents":[)" + url + "]}", {}, 0);
  const auto& dead = dlq_reader().AwaitCount(2);
  ASSERT_EQ(dead.size(), 2u);
  EXPECT_NE(dead[0].header(bus::header::kReason)->find("too_many_documents"), std::string::npos);
  EXPECT_NE(dead[1].header(bus::header::kReason)->find("missing_recipient"), std::string::npos);
  EXPECT_EQ(target.accepted(), 0);
}

TEST_F(IngestTest, CommittedRecordsAreNotIngestedAgainAfterARestart) {
  const std::string blob = *blobs_->Put(kText);
  StartWorker();
  Produce("r1", R"({"to":["+15550100000"],"documents":[{"blob_id":")" + blob + R"("}]})");
  Produce("r2", "garbage");
  ASSERT_EQ(AwaitSubmissions(1).size(), 1u);
  ASSERT_EQ(dlq_reader().AwaitCount(1).size(), 1u);
  ASSERT_TRUE(Await([&] { return Metric("dead_letter") == 1 && Metric("accepted") == 1; }, 5s));
  worker_->Stop();
  worker_.reset();
  StartWorker();
  Produce("r3", R"({"to":["+15550100001"],"documents":[{"blob_id":")" + blob + R"("}]})");
  auto subs = AwaitSubmissions(2);
  ASSERT_EQ(subs.size(), 2u);
  // Submissions are keyed by fax id over many partitions: compare as a set.
  std::set<std::string> numbers = {subs[0].recipients(0).number(), subs[1].recipients(0).number()};
  EXPECT_EQ(numbers, (std::set<std::string>{"+15550100000", "+15550100001"}));
  // Nothing more arrives: r1 and r2 were committed.
  EXPECT_EQ(submissions_reader().AwaitCount(3, 500ms).size(), 2u);
  EXPECT_EQ(dlq_reader().AwaitCount(2, 200ms).size(), 1u);
}

// ---- the SSRF guard of the URL fetcher ----

TEST(UrlGuardTest, ClassifiesForbiddenAddresses) {
  for (const char* bad : {"127.0.0.1", "127.255.0.9", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
                          "169.254.169.254", "100.64.0.1", "100.127.255.255", "0.0.0.0", "224.0.0.1", "255.255.255.255",
                          "::", "::1", "fe80::1", "fc00::1", "fd00:ec2::254", "ff02::1", "::ffff:127.0.0.1",
                          "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1", "64:ff9b::a9fe:a9fe",
                          "2002:7f00:1::", "2001:db8::1"}) {
    auto ip = IpAddress::Parse(bad);
    ASSERT_TRUE(ip) << bad;
    EXPECT_TRUE(ForbiddenAddressReason(*ip).has_value()) << bad;
  }
  for (const char* good : {"8.8.8.8", "93.184.216.34", "172.32.0.1", "100.128.0.1", "2606:4700::1111",
                           "::ffff:8.8.8.8", "2a00:1450:4001::200e"}) {
    auto ip = IpAddress::Parse(good);
    ASSERT_TRUE(ip) << good;
    EXPECT_FALSE(ForbiddenAddressReason(*ip).has_value()) << good << ": " << *ForbiddenAddressReason(*ip);
  }
  EXPECT_EQ(*ForbiddenAddressReason(*IpAddress::Parse("::ffff:127.0.0.1")), "loopback (IPv4-mapped)");
}

TEST(UrlGuardTest, RefusesForbiddenTargetsAndSchemesWithoutConnecting) {
  CountingListener target;
  const std::string p = std::to_string(target.port());
  UrlFetcherOptions o;
  o.allow_private = false;
  o.timeout = 3s;
  UrlFetcher fetcher(o);
  for (const std::string& url : std::vector<std::string>{"http://127.0.0.1:" + p + "/", "http://localhost:" + p + "/", "http://10.0.0.1:" + p + "/",
                                "http://192.168.1.1:" + p + "/", "http://169.254.169.254/latest/meta-data/",
                                "http://[::1]:" + p + "/", "http://[::ffff:127.0.0.1]:" + p + "/",
                                "http://2130706433:" + p + "/", "http://0177.0.0.1:" + p + "/",
                                "http://0x7f.1:" + p + "/", "http://0:" + p + "/", "https://127.1:" + p + "/",
                                "file:///etc/passwd", "gopher://127.0.0.1:" + p + "/_GET", "ftp://127.0.0.1:" + p + "/",
                                "dict://127.0.0.1:" + p + "/", "not a url"}) {
    auto r = fetcher.Fetch(url);
    ASSERT_FALSE(r.ok()) << url;
    EXPECT_TRUE(r.status().permanent()) << url << ": " << r.status().ToString();
    EXPECT_NE(r.status().message().find("url refused"), std::string::npos) << url << ": " << r.status().message();
  }
  EXPECT_EQ(target.accepted(), 0);
}

// The redirect rule end to end: 127.0.0.1 plays an allowed public host, 127.0.0.2 a forbidden one.
TEST(UrlGuardTest, EveryRedirectHopIsCheckedAndCounted) {
  DocServer allowed("127.0.0.1");
  CountingListener forbidden("127.0.0.2");
  UrlFetcherOptions o;
  o.allow_private = false;
  o.timeout = 5s;
  o.address_rule = [](const IpAddress& ip) -> std::optional<std::string> {
    if (ip == *IpAddress::Parse("127.0.0.1")) return std::nullopt;
    return ForbiddenAddressReason(ip);
  };
  UrlFetcher fetcher(o);

  auto ok = fetcher.Fetch(allowed.Url("/chain/5"));  // exactly 5 redirects: allowed
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->content, kText);
  EXPECT_EQ(ok->redirects, 5);

  auto loop = fetcher.Fetch(allowed.Url("/chain/6"));
  ASSERT_FALSE(loop.ok());
  EXPECT_TRUE(loop.status().permanent());
  EXPECT_NE(loop.status().message().find("too many redirects"), std::string::npos) << loop.status().message();

  const std::string target = "http://127.0.0.2:" + std::to_string(forbidden.port()) + "/";
  for (const std::string& to : std::vector<std::string>{target, "http://[::ffff:127.0.0.2]:" + std::to_string(forbidden.port()) + "/",
                                std::string("file:///etc/passwd"), std::string("gopher://127.0.0.2/")}) {
    auto r = fetcher.Fetch(allowed.Url("/to?u=" + httplib::detail::encode_query_param(to)));
    ASSERT_FALSE(r.ok()) << to;
    EXPECT_TRUE(r.status().permanent()) << to;
    EXPECT_NE(r.status().message().find("url refused"), std::string::npos) << r.status().message();
  }
  EXPECT_EQ(forbidden.accepted(), 0);
}

TEST(UrlGuardTest, SizeCapAndTransientErrorsAreTyped) {
  DocServer server;
  UrlFetcherOptions o;
  o.allow_private = true;
  o.max_bytes = 1024;
  o.timeout = 5s;
  UrlFetcher fetcher(o);
  auto big = fetcher.Fetch(server.Url("/big.txt"));
  ASSERT_FALSE(big.ok());
  EXPECT_TRUE(big.status().permanent());
  EXPECT_NE(big.status().message().find("url too large"), std::string::npos) << big.status().message();

  auto flaky = fetcher.Fetch(server.Url("/flaky.txt"));
  ASSERT_FALSE(flaky.ok());
  EXPECT_TRUE(flaky.status().retryable());
  EXPECT_NE(flaky.status().message().find("url unreachable: HTTP 503"), std::string::npos) << flaky.status().message();

  auto missing = fetcher.Fetch(server.Url("/nope"));
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.status().permanent());

  auto closed = fetcher.Fetch("http://127.0.0.1:" + std::to_string(faxflow::testing::FreePort()) + "/");
  ASSERT_FALSE(closed.ok());
  EXPECT_TRUE(closed.status().retryable()) << closed.status().ToString();
  EXPECT_NE(closed.status().message().find("url unreachable"), std::string::npos);
}

TEST(IngestRecordTest, Base64IsStrict) {
  EXPECT_EQ(*DecodeBase64("aGVsbG8="), "hello");
  EXPECT_EQ(*DecodeBase64("aGVsbG8"), "hello");
  EXPECT_EQ(*DecodeBase64("aGVs\nbG8="), "hello");
  EXPECT_FALSE(DecodeBase64("aGVsbG8=x").ok());
  EXPECT_FALSE(DecodeBase64("a").ok());
  EXPECT_FALSE(DecodeBase64("aGV-bG8=").ok());
}

}  // namespace
}  // namespace faxflow::ingest

namespace faxflow::ingest {
namespace {

bus::Record Rec(std::string value, std::vector<bus::Header> headers = {}) {
  bus::Record r;
  r.topic = "fax.ingest";
  r.value = std::move(value);
  r.headers = std::move(headers);
  return r;
}

TEST(IngestRecordTest, FormatIsDecidedByHeaderThenFirstByte) {
  auto j = DecodeIngestRecord(Rec("  \n {\"to\":[\"+15550100000\"],\"documents\":[{\"url\":\"https://a/b.pdf\"}]}"));
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ(j->format, "json");
  EXPECT_EQ(j->documents[0].kind, IngestDocument::Kind::kUrl);

  v1::Submission sub;
  sub.add_recipients()->set_number("+15550100000");
  sub.add_documents()->set_url("https://a/b.pdf");
  auto p = DecodeIngestRecord(Rec(sub.SerializeAsString(), {{"content-type", "application/x-protobuf"}}));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->format, "protobuf");
  EXPECT_EQ(p->tenant, "default");

  // A JSON content-type on Protobuf bytes is believed, and the reason says so.
  auto wrong = DecodeIngestRecord(Rec(sub.SerializeAsString(), {{"Content-Type", "application/json"}}));
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("not JSON"), std::string::npos) << wrong.status().message();
  EXPECT_FALSE(DecodeIngestRecord(Rec("{}", {{"content-type", "text/csv"}})).ok());
  EXPECT_FALSE(DecodeIngestRecord(Rec("   ")).ok());
}

TEST(IngestRecordTest, TypesAreStrict) {
  struct Case {
    std::string json;
    std::string reason;
  };
  for (const auto& c : std::vector<Case>{
           {R"({"to":["+1"],"documents":[],"options":{"priority":5.5}})", "options.priority: expected an integer, got number"},
           {R"({"to":["+1"],"documents":[],"options":{"priority":12}})", "options.priority: must be between 0 and 9"},
           {R"({"to":["+1"],"documents":[],"options":{"paper":"a3"}})", "options.paper: must be"},
           {R"({"to":["+1"],"documents":[],"options":{"colour":true}})", "options.colour: unknown field"},
           {R"({"to":[1],"documents":[]})", "to[0]: expected a string, got integer"},
           {R"({"to":["+1"],"documents":{"url":"x"}})", "documents: expected an array of objects, got object"},
           {R"({"to":["+1"],"documents":["https://a/b"]})", "documents[0]: expected an object, got string"},
           {R"({"to":["+1"],"documents":[{"filename":"a.pdf"}]})", "exactly one of"},
           {R"({"tenant":7})", "tenant: expected a string, got integer"},
           {R"([])", "not JSON"},
           {R"("just a string")", "not JSON"},
       }) {
    auto r = DecodeIngestRecord(Rec(c.json));
    ASSERT_FALSE(r.ok()) << c.json;
    EXPECT_TRUE(r.status().permanent());
    EXPECT_NE(r.status().message().find(c.reason), std::string::npos) << c.json << " -> " << r.status().message();
  }
  v1::Submission both;
  both.add_recipients()->set_number("+15550100000");
  auto* d = both.add_documents();
  d->set_blob_id("a");
  d->set_url("https://a/b");
  auto r = DecodeIngestRecord(Rec(both.SerializeAsString(), {{"faxflow-schema", "faxflow.v1.Submission"}}));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not both"), std::string::npos);
}

}  // namespace
}  // namespace faxflow::ingest
