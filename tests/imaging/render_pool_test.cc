// The pool of warm Ghostscript processes against the real gs binary: processes are reused for
// one tenant only, retired after N documents, hostile documents (endless loop, crash, corrupt
// file, poisoning the interpreter for the next document) cost only their own process and the
// pool recovers, pages rendered in parallel by several processes equal the one-process render
// pixel for pixel, and a broadcast (one submission, many recipients) is rendered once.
#include "workers/imaging/render_pool.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/clock.h"
#include "common/metrics.h"
#include "pages/pages.h"
#include "schemas/event.pb.h"
#include "schemas/job.pb.h"
#include "schemas/submission.pb.h"
#include "storage/blob_store.h"
#include "tests/imaging/test_util.h"
#include "topics/catalogue.h"
#include "topics/embedded/embedded_bus.h"
#include "workers/imaging/imaging_worker.h"
#include "workers/imaging/renderer.h"

namespace faxflow::imaging {
namespace {

using testing::ReadData;
namespace fs = std::filesystem;

const char* kOnePagePs =
    "%!PS\n/Helvetica findfont 24 scalefont setfont 72 700 moveto (one page) show\n"
    "72 72 moveto 500 600 lineto stroke showpage\n";

RenderPoolOptions PoolOptions() {
  RenderPoolOptions o;
  o.timeout_seconds = 60;
  o.cpu_seconds = 30;
  o.max_processes = 2;
  o.spare_processes = 0;
  return o;
}

PoolJob PsJob(std::string_view program) { return PoolJob{program, false, 1, 0}; }

// The value of one sample of the registry's text exposition (0 if absent).
double MetricValue(const MetricsRegistry& registry, const std::string& sample) {
  std::string text = SerializeMetrics(registry);
  size_t pos = text.find("\n" + sample + " ");
  if (pos == std::string::npos) return 0;
  return std::atof(text.c_str() + pos + sample.size() + 2);
}

// A PostScript program of `pages` varied pages (text, rules, a filled shape per page).
std::string ManyPagesPs(int pages) {
  std::string ps = "%!PS\n/Times-Roman findfont 14 scalefont setfont\n";
  for (int p = 1; p <= pages; ++p) {
    ps += "72 770 moveto (Page " + std::to_string(p) + " of a long document) show\n";
    for (int l = 0; l < 30; ++l)
      ps += "72 " + std::to_string(740 - 20 * l) + " moveto (line " + std::to_string(l) +
            ": the quick brown fox jumps over the lazy dog " + std::to_string(p * l) + ") show\n";
    ps += "newpath " + std::to_string(100 + 10 * p % 300) + " 100 moveto 0 " +
          std::to_string(50 + p % 7 * 10) +
          " rlineto 80 0 rlineto closepath 0.5 setgray fill 0 setgray showpage\n";
  }
  return ps;
}

class RenderPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("render_pool_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
};

std::string ReadAbsolute(const std::string& path) {
  std::string bytes;
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
    char buf[65536];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.append(buf, n);
    std::fclose(f);
  }
  return bytes;
}

TEST_F(RenderPoolTest, WarmProcessIsReusedForTheSameTenant) {
  RenderPool pool(PoolOptions(), SystemClock::Instance(), nullptr);
  uint64_t first = 0;
  for (int i = 0; i < 3; ++i) {
    auto lease = pool.Acquire("acme", {});
    ASSERT_TRUE(lease.ok()) << lease.status().ToString();
    EXPECT_EQ(lease->docs_served(), i);
    if (i == 0) first = lease->process_serial();
    EXPECT_EQ(lease->process_serial(), first) << "document " << i << " did not reuse the warm process";
    auto out = lease->Run(PsJob(kOnePagePs));
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    ASSERT_EQ(out->pages.size(), 1u);
    EXPECT_TRUE(pages::ValidateFaxPage(out->pages[0]).ok());
  }
  EXPECT_EQ(pool.stats().starts, 1u);
  EXPECT_EQ(pool.stats().jobs, 3u);
}

TEST_F(RenderPoolTest, AProcessNeverServesTwoTenants) {
  RenderPoolOptions o = PoolOptions();
  o.max_processes = 3;
  o.spare_processes = 1;
  o.docs_per_process = 6;
  RenderPool pool(o, SystemClock::Instance(), nullptr);
  ASSERT_TRUE(pool.WarmUp().ok());
  std::mutex mu;
  std::map<uint64_t, std::set<std::string>> tenants_of;
  std::vector<std::string> failures;
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 12; ++i) {
        std::string tenant = "tenant-" + std::to_string((t + i) % 4);
        auto lease = pool.Acquire(tenant, {});
        if (!lease.ok()) {
          std::lock_guard lock(mu);
          failures.push_back(lease.status().ToString());
          continue;
        }
        {
          std::lock_guard lock(mu);
          tenants_of[lease->process_serial()].insert(tenant);
        }
        auto out = lease->Run(PsJob(kOnePagePs));
        std::lock_guard lock(mu);
        if (!out.ok())
          failures.push_back(out.status().ToString());
        else if (out->pages.size() != 1)
          failures.push_back("pages: " + std::to_string(out->pages.size()));
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_TRUE(failures.empty()) << failures.front();
  EXPECT_GT(tenants_of.size(), 3u);  // tenants came and went: processes were evicted and replaced
  for (auto& [serial, tenants] : tenants_of)
    EXPECT_EQ(tenants.size(), 1u) << "process " << serial << " served " << tenants.size() << " tenants";
  EXPECT_LE(pool.stats().processes, 3);

  // With room for one process only, a second tenant evicts the first tenant's idle process.
  RenderPoolOptions one = PoolOptions();
  one.max_processes = 1;
  RenderPool small(one, SystemClock::Instance(), nullptr);
  uint64_t a = 0;
  pid_t a_pid = 0;
  {
    auto lease = small.Acquire("a", {});
    ASSERT_TRUE(lease.ok());
    a = lease->process_serial();
    a_pid = lease->pid();
    ASSERT_TRUE(lease->Run(PsJob(kOnePagePs)).ok());
  }
  auto lease_b = small.Acquire("b", {});
  ASSERT_TRUE(lease_b.ok());
  EXPECT_NE(lease_b->process_serial(), a);
  EXPECT_NE(::kill(a_pid, 0), 0) << "the evicted process of tenant a still runs";
  EXPECT_EQ(small.stats().recycles, 1u);
}

TEST_F(RenderPoolTest, ProcessIsRetiredAfterDocsPerProcess) {
  MetricsRegistry registry;
  RenderMetrics metrics(registry);
  RenderPoolOptions o = PoolOptions();
  o.docs_per_process = 3;
  RenderPool pool(o, SystemClock::Instance(), &metrics);
  std::vector<uint64_t> serials;
  for (int i = 0; i < 7; ++i) {
    auto lease = pool.Acquire("acme", {});
    ASSERT_TRUE(lease.ok());
    serials.push_back(lease->process_serial());
    ASSERT_TRUE(lease->Run(PsJob(kOnePagePs)).ok());
  }
  EXPECT_EQ(serials[0], serials[1]);
  EXPECT_EQ(serials[1], serials[2]);
  EXPECT_NE(serials[2], serials[3]);
  EXPECT_EQ(serials[3], serials[5]);
  EXPECT_NE(serials[5], serials[6]);
  EXPECT_EQ(std::set<uint64_t>(serials.begin(), serials.end()).size(), 3u);
  EXPECT_EQ(MetricValue(registry, "faxflow_imaging_renderer_recycles_total{reason=\"docs_limit\"}"), 2);
  EXPECT_EQ(MetricValue(registry, "faxflow_imaging_renderer_process_starts_total"), 3);
  EXPECT_EQ(MetricValue(registry, "faxflow_imaging_renderer_processes{state=\"idle\"}"), 1);
}

TEST_F(RenderPoolTest, HostileDocumentsCostOnlyTheirProcessAndThePoolRecovers) {
  MetricsRegistry registry;
  RendererOptions o;
  o.timeout_seconds = 90;  // generous: a loaded 2-core machine gives gs a small share of a core
  o.cpu_seconds = 1;
  o.pool_processes = 2;
  Renderer r(o, SystemClock::Instance(), &registry);
  ASSERT_TRUE(r.CheckGhostscript().ok());
  RenderRequest acme(FaxResolution::kFine, PaperSize::kA4, "acme");
  ASSERT_TRUE(r.Render(ReadData("sample.pdf"), DocumentType::kPdf, acme).ok());

  // Endless loop: killed at the CPU limit, a typed document error.
  auto loop = r.Render(ReadData("loop.ps"), DocumentType::kPostScript, acme);
  ASSERT_FALSE(loop.ok());
  EXPECT_EQ(loop.status().code(), Code::kDocumentError);
  EXPECT_NE(loop.status().message().find("CPU limit of 1 s"), std::string::npos) << loop.status().message();
  // Corrupt PDF: a document error naming gs's complaint.
  auto corrupt = r.Render(ReadData("corrupt.pdf"), DocumentType::kPdf, acme);
  ASSERT_FALSE(corrupt.ok());
  EXPECT_EQ(corrupt.status().code(), Code::kDocumentError);
  EXPECT_NE(corrupt.status().message().find("ghostscript rejected the document"), std::string::npos);
  // The pool serves both tenants afterwards.
  for (std::string tenant : {"acme", "globex"}) {
    auto again =
        r.Render(ReadData("sample.pdf"), DocumentType::kPdf, {FaxResolution::kFine, PaperSize::kA4, tenant});
    ASSERT_TRUE(again.ok()) << tenant << ": " << again.status().ToString();
    EXPECT_EQ(again->pages.size(), 4u);
  }
  EXPECT_LE(r.pool()->stats().processes, 2);
  EXPECT_GE(MetricValue(registry, "faxflow_imaging_renderer_recycles_total{reason=\"failure\"}"), 2);
  EXPECT_EQ(MetricValue(registry, "faxflow_imaging_document_renders_total{outcome=\"document_error\"}"), 2);
  EXPECT_EQ(MetricValue(registry, "faxflow_imaging_document_renders_total{outcome=\"ok\"}"), 3);
  EXPECT_EQ(MetricValue(registry, "faxflow_imaging_rendered_pages_total"), 12);
}

TEST_F(RenderPoolTest, CrashAndHangCostOnlyTheProcess) {
  RenderPoolOptions o = PoolOptions();
  o.timeout_seconds = 1.5;
  RenderPool pool(o, SystemClock::Instance(), nullptr);
  // A hang: killed at the wall-clock deadline.
  {
    auto lease = pool.Acquire("acme", {});
    ASSERT_TRUE(lease.ok());
    pid_t pid = lease->pid();
    auto hung = lease->Run(PsJob(ReadData("loop.ps")));
    ASSERT_FALSE(hung.ok());
    EXPECT_EQ(hung.status().message(), "render timed out after 1.5 s (killed)");
    EXPECT_TRUE(lease->process_failed());
    EXPECT_NE(::kill(pid, 0), 0) << "the hung process was not killed";
  }
  // A crash (SIGSEGV from outside while it runs): a typed error, the next document is served.
  {
    RenderPoolOptions slow = PoolOptions();
    slow.timeout_seconds = 30;
    RenderPool crash_pool(slow, SystemClock::Instance(), nullptr);
    auto lease = crash_pool.Acquire("acme", {});
    ASSERT_TRUE(lease.ok());
    pid_t pid = lease->pid();
    std::thread killer([pid] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));  // lets the loop start
      ::kill(pid, SIGSEGV);
    });
    auto crashed = lease->Run(PsJob(ReadData("loop.ps")));
    killer.join();
    ASSERT_FALSE(crashed.ok());
    EXPECT_EQ(crashed.status().code(), Code::kDocumentError);
    EXPECT_NE(crashed.status().message().find("crashed on the document (SIGSEGV)"), std::string::npos)
        << crashed.status().message();
  }
  auto lease = pool.Acquire("acme", {});
  ASSERT_TRUE(lease.ok());
  auto ok = lease->Run(PsJob(kOnePagePs));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->pages.size(), 1u);
}

TEST_F(RenderPoolTest, PoisonedProcessDoesNotFailTheNextDocument) {
  RendererOptions o;
  o.pool_processes = 2;
  o.spare_processes = 0;
  Renderer r(o, SystemClock::Instance());
  RenderRequest acme(FaxResolution::kFine, PaperSize::kA4, "acme");
  // Global VM survives save/restore: this turns showpage into a no-op for later jobs.
  auto poison = r.Render("%!PS\ntrue setglobal globaldict /showpage 0 array cvx put false setglobal\n",
                         DocumentType::kPostScript, acme);
  ASSERT_FALSE(poison.ok());
  EXPECT_EQ(poison.status().message(), "document has no pages");
  auto next = r.Render(ReadData("sample.ps"), DocumentType::kPostScript, acme);
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_EQ(next->pages.size(), 4u);
}

TEST_F(RenderPoolTest, ParallelPagesEqualTheSingleProcessRender) {
  std::string ps_path = (dir_ / "long.ps").string(), pdf_path = (dir_ / "long.pdf").string();
  {
    std::string ps = ManyPagesPs(24);
    std::FILE* f = std::fopen(ps_path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite(ps.data(), 1, ps.size(), f);
    std::fclose(f);
  }
  std::string cmd =
      "gs -q -dSAFER -dBATCH -dNOPAUSE -sDEVICE=pdfwrite -sPAPERSIZE=a4 -dFIXEDMEDIA -sOutputFile=" +
      pdf_path + " " + ps_path;
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  std::string pdf = ReadAbsolute(pdf_path);
  ASSERT_FALSE(pdf.empty());

  RendererOptions single_options;
  single_options.pool_processes = 0;  // one gs run per document: the reference
  Renderer single(single_options, SystemClock::Instance());
  auto expected = single.Render(pdf, DocumentType::kPdf, {});
  ASSERT_TRUE(expected.ok()) << expected.status().ToString();
  ASSERT_EQ(expected->pages.size(), 24u);

  MetricsRegistry registry;
  RendererOptions parallel_options;
  parallel_options.pool_processes = 3;
  parallel_options.parallel_min_pages = 8;
  parallel_options.parallelism = 3;
  Renderer parallel(parallel_options, SystemClock::Instance(), &registry);
  ASSERT_TRUE(parallel.CheckGhostscript().ok());  // starts a warm spare
  for (auto res : {FaxResolution::kFine, FaxResolution::kNormal}) {
    auto reference = res == FaxResolution::kFine
                         ? std::move(expected)
                         : single.Render(pdf, DocumentType::kPdf, {res, PaperSize::kA4});
    ASSERT_TRUE(reference.ok());
    auto actual = parallel.Render(pdf, DocumentType::kPdf, {res, PaperSize::kA4, "acme"});
    ASSERT_TRUE(actual.ok()) << actual.status().ToString();
    ASSERT_EQ(actual->pages.size(), reference->pages.size());
    for (size_t i = 0; i < actual->pages.size(); ++i) {
      auto want = pages::DecodePages(reference->pages[i]);
      auto got = pages::DecodePages(actual->pages[i]);
      ASSERT_TRUE(want.ok() && got.ok());
      Status same = pages::ComparePages(*want, *got);
      EXPECT_TRUE(same.ok()) << "page " << i + 1 << ": " << same.ToString();
      // Byte for byte too: content-addressed page ids do not depend on the render path.
      EXPECT_TRUE(actual->pages[i] == reference->pages[i]) << "page " << i + 1 << " differs in its bytes";
    }
  }
  // A small document on a reused warm process: the same bytes as a one-shot render.
  auto one_shot = single.Render(ReadData("sample.pdf"), DocumentType::kPdf, {});
  auto pooled = parallel.Render(ReadData("sample.pdf"), DocumentType::kPdf,
                                {FaxResolution::kFine, PaperSize::kA4, "acme"});
  ASSERT_TRUE(one_shot.ok() && pooled.ok());
  EXPECT_TRUE(one_shot->pages == pooled->pages);
  EXPECT_GE(MetricValue(registry, "faxflow_imaging_renderer_parallel_documents_total"), 1)
      << "the document was not split across processes";
}

// Private dirs left by a worker that was killed (kill -9) are removed by the next pool.
TEST_F(RenderPoolTest, StaleDirsOfDeadWorkersAreRemoved) {
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ASSERT_GT(dead, 0);
  ASSERT_EQ(::waitpid(dead, nullptr, 0), dead);
  auto make = [&](const std::string& name, pid_t owner) {
    fs::create_directories(dir_ / name / "in");
    std::FILE* f = std::fopen((dir_ / name / "owner").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fprintf(f, "%d\n", static_cast<int>(owner));
    std::fclose(f);
  };
  make("faxflow-gs-dead01", dead);
  make("faxflow-gs-alive1", ::getpid());
  RenderPoolOptions o = PoolOptions();
  o.temp_dir = dir_.string();
  RenderPool pool(o, SystemClock::Instance(), nullptr);
  EXPECT_FALSE(fs::exists(dir_ / "faxflow-gs-dead01"));
  EXPECT_TRUE(fs::exists(dir_ / "faxflow-gs-alive1"));
  {
    auto lease = pool.Acquire("acme", {});
    ASSERT_TRUE(lease.ok());
    ASSERT_TRUE(lease->Run(PsJob(kOnePagePs)).ok());
  }
  size_t own = 0;
  for (auto& e : fs::directory_iterator(dir_))
    own += e.path().filename().string().rfind("faxflow-gs-", 0) == 0;
  EXPECT_EQ(own, 2u);  // the live pool's process dir + the other live owner's
}

// A submission to many recipients is rendered once (the broadcast shares its pages).
TEST_F(RenderPoolTest, BroadcastIsRenderedOnce) {
  auto bus = bus::OpenEmbeddedBus((dir_ / "bus").string());
  ASSERT_TRUE(bus.ok()) << bus.status().ToString();
  ASSERT_TRUE((*bus)->EnsureTopics(bus::Catalogue()).ok());
  auto blobs =
      OpenRocksBlobStore((dir_ / "blobs").string(), {}, [] { return SystemClock::Instance().NowMillis(); });
  ASSERT_TRUE(blobs.ok()) << blobs.status().ToString();
  auto doc = (*blobs)->Put(ReadData("sample.pdf"));
  ASSERT_TRUE(doc.ok());

  v1::Submission s;
  s.set_fax_id("fax_broadcast");
  s.set_tenant("acme");
  s.set_submitted_at_ms(1'700'000'000'000);
  for (int i = 0; i < 6; ++i) {
    auto* rcp = s.add_recipients();
    rcp->set_recipient_id("rcp_" + std::to_string(i));
    rcp->set_number("+1555123000" + std::to_string(i));
  }
  s.add_documents()->set_blob_id(*doc);
  auto producer = (*bus)->NewProducer("test");
  ASSERT_TRUE(producer.ok());
  bus::Message m;
  m.topic = std::string(bus::topic::kSubmissions);
  m.key = s.fax_id();
  m.value = s.SerializeAsString();
  m.headers.push_back({std::string(bus::header::kSchema), "faxflow.v1.Submission"});
  ASSERT_TRUE((*producer)->Produce(m).ok());

  bus::ConsumerOptions co;
  co.group = "test-reader";
  auto reader = (*bus)->NewConsumer(co);
  ASSERT_TRUE(reader.ok());
  auto jobs_tps = bus::AllPartitions(**bus, std::string(bus::topic::kJobs));
  ASSERT_TRUE(jobs_tps.ok());
  ASSERT_TRUE((*reader)->Assign(*jobs_tps).ok());

  MetricsRegistry registry;
  ImagingOptions options;
  options.threads = 1;
  options.site = "test";
  options.poll_timeout = std::chrono::milliseconds(50);
  ImagingWorker worker(options, **bus, **blobs, registry, SystemClock::Instance());
  ASSERT_TRUE(worker.Start().ok());
  std::set<std::string> pages_of_jobs;
  size_t jobs = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  while (jobs < 6 && std::chrono::steady_clock::now() < deadline) {
    auto recs = (*reader)->Poll(std::chrono::milliseconds(100), 100);
    ASSERT_TRUE(recs.ok());
    for (auto& r : *recs) {
      v1::OutboundJob job;
      ASSERT_TRUE(job.ParseFromString(r.value));
      std::string ids;
      for (auto& p : job.pages()) ids += p.blob_id() + ",";
      pages_of_jobs.insert(ids);
      ++jobs;
    }
  }
  worker.Stop();
  ASSERT_EQ(jobs, 6u);
  EXPECT_EQ(pages_of_jobs.size(), 1u) << "recipients got different page sets";
  EXPECT_EQ(MetricValue(registry, "faxflow_imaging_document_renders_total{outcome=\"ok\"}"), 1)
      << "the broadcast was rendered more than once";
  EXPECT_EQ(MetricValue(registry, "faxflow_imaging_rendered_pages_total"), 4);
}

}  // namespace
}  // namespace faxflow::imaging
