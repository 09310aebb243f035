// Load sampling (common/load.h) against fake cgroup and /proc files, and the score formula.
#include "common/load.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/support/support.h"

namespace faxflow {
namespace {

void Write(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path) << text;
}

TEST(LoadScoreTest, WeightedAveragePlusArtificialClamped) {
  LoadWeights w;  // 0.5 cpu, 0.2 memory, 0.2 renders, 0.1 lag
  EXPECT_DOUBLE_EQ(LoadScore(w, 0, 0, 0, 0, 0), 0);
  EXPECT_NEAR(LoadScore(w, 1, 0, 0, 0, 0), 0.5, 1e-12);
  EXPECT_NEAR(LoadScore(w, 0.5, 0.5, 0.5, 0.5, 0), 0.5, 1e-12);
  EXPECT_NEAR(LoadScore(w, 0.2, 0, 0, 0, 0.3), 0.4, 1e-12);
  EXPECT_DOUBLE_EQ(LoadScore(w, 1, 1, 1, 1, 0.5), 1);   // clamped
  EXPECT_DOUBLE_EQ(LoadScore(w, 7, -3, 0, 0, 0), 0.5);  // inputs clamped to 0..1
  LoadWeights none{0, 0, 0, 0};
  EXPECT_DOUBLE_EQ(LoadScore(none, 1, 1, 1, 1, 0.35), 0.35);  // artificial alone
}

TEST(LoadSamplerTest, CgroupCpuAndMemory) {
  testing::TempDir dir("load-cgroup");
  const std::string cg = dir.path() + "/cg";
  Write(cg + "/cpu.stat", "usage_usec 1000000\nuser_usec 600000\nsystem_usec 400000\n");
  Write(cg + "/cpu.max", "200000 100000\n");  // 2 cores
  Write(cg + "/memory.current", "268435456\n");
  Write(cg + "/memory.max", "1073741824\n");
  ManualClock clock;
  LoadOptions o;
  o.cgroup_dir = cg;
  o.proc_dir = dir.path() + "/no-proc";
  LoadSampler sampler(o, clock);
  EXPECT_DOUBLE_EQ(sampler.capacity(), 2.0);
  auto first = sampler.Sample({0, 2, 0});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->cpu_source, "cgroup");
  EXPECT_EQ(first->memory_source, "cgroup");
  EXPECT_DOUBLE_EQ(first->cpu, 0);  // no previous sample
  EXPECT_DOUBLE_EQ(first->memory, 0.25);
  // 1 s later 1.5 s of CPU were used on 2 cores: 75% busy.
  clock.Advance(std::chrono::seconds(1));
  Write(cg + "/cpu.stat", "usage_usec 2500000\n");
  auto second = sampler.Sample({1, 2, 50});
  ASSERT_TRUE(second.ok());
  EXPECT_NEAR(second->cpu, 0.75, 1e-9);
  EXPECT_DOUBLE_EQ(second->renders, 0.5);
  EXPECT_DOUBLE_EQ(second->lag, 0.5);
  EXPECT_NEAR(second->score, (0.5 * 0.75 + 0.2 * 0.25 + 0.2 * 0.5 + 0.1 * 0.5), 1e-9);
}

TEST(LoadSamplerTest, ProcFallbackWhenNoCgroupFiles) {
  testing::TempDir dir("load-proc");
  const std::string proc = dir.path() + "/proc";
  Write(proc + "/stat", "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n");
  Write(proc + "/meminfo", "MemTotal:       8000000 kB\nMemFree:  1000 kB\nMemAvailable:   2000000 kB\n");
  Write(dir.path() + "/cg/memory.max", "max\n");  // unlimited cgroup: use meminfo
  Write(dir.path() + "/cg/memory.current", "123\n");
  ManualClock clock;
  LoadOptions o;
  o.cgroup_dir = dir.path() + "/cg";
  o.proc_dir = proc;
  o.capacity = 4;
  LoadSampler sampler(o, clock);
  EXPECT_DOUBLE_EQ(sampler.capacity(), 4.0);
  ASSERT_TRUE(sampler.Sample({}).ok());
  // +300 busy (user+system), +100 idle: 75% busy.
  Write(proc + "/stat", "cpu  250 0 250 800 100 0 0 0 0 0\n");
  clock.Advance(std::chrono::seconds(1));
  auto s = sampler.Sample({});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->cpu_source, "proc");
  EXPECT_EQ(s->memory_source, "proc");
  EXPECT_NEAR(s->cpu, 0.75, 1e-9);
  EXPECT_NEAR(s->memory, 0.75, 1e-9);
}

TEST(LoadSamplerTest, ArtificialLoadFileIsReReadEverySample) {
  testing::TempDir dir("load-art");
  Write(dir.path() + "/proc/stat", "cpu  1 0 1 10 0 0 0 0\n");
  Write(dir.path() + "/proc/meminfo", "MemTotal: 100 kB\nMemAvailable: 100 kB\n");
  ManualClock clock;
  LoadOptions o;
  o.weights = {0, 0, 0, 0};
  o.cgroup_dir = dir.path() + "/none";
  o.proc_dir = dir.path() + "/proc";
  o.artificial = 0.1;
  o.artificial_file = dir.path() + "/artificial";
  LoadSampler sampler(o, clock);
  auto s = sampler.Sample({});
  ASSERT_TRUE(s.ok());
  EXPECT_DOUBLE_EQ(s->score, 0.1);  // no file yet: the static knob
  Write(o.artificial_file, "0.6\n");
  EXPECT_DOUBLE_EQ(sampler.Sample({}).value().score, 0.6);
  Write(o.artificial_file, "0.25");
  EXPECT_DOUBLE_EQ(sampler.Sample({}).value().score, 0.25);
  Write(o.artificial_file, "lots");
  EXPECT_FALSE(sampler.Sample({}).ok());
}

TEST(LoadSamplerTest, MissingFilesAreAnError) {
  ManualClock clock;
  LoadOptions o;
  o.cgroup_dir = "/nonexistent/cg";
  o.proc_dir = "/nonexistent/proc";
  LoadSampler sampler(o, clock);
  auto s = sampler.Sample({});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), Code::kIoError);
}

TEST(LoadSamplerTest, RealHostFilesWork) {
  ManualClock clock;
  LoadSampler sampler(LoadOptions{}, clock);
  auto s = sampler.Sample({});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_GE(s->memory, 0.0);
  EXPECT_LE(s->memory, 1.0);
  EXPECT_GT(sampler.capacity(), 0.0);
}

}  // namespace
}  // namespace faxflow
