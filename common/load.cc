#include "common/load.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <thread>

namespace faxflow {
namespace {

double Clamp01(double v) {
  if (!(v > 0)) return 0;  // also NaN
  return std::min(v, 1.0);
}

std::optional<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

std::string Trim(std::string s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

// Value of "key value" lines (cpu.stat) or "Key: value kB" lines (meminfo).
std::optional<uint64_t> FieldOf(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string name;
    uint64_t value = 0;
    if (!(ls >> name)) continue;
    if (!name.empty() && name.back() == ':') name.pop_back();
    if (name == key && (ls >> value)) return value;
  }
  return std::nullopt;
}

}  // namespace

LoadOptions LoadOptions::FromConfig(const Config& config) {
  LoadOptions o;
  o.weights.cpu = config.imaging_load_weight_cpu;
  o.weights.memory = config.imaging_load_weight_memory;
  o.weights.renders = config.imaging_load_weight_renders;
  o.weights.lag = config.imaging_load_weight_lag;
  o.lag_norm = config.imaging_load_lag_norm;
  o.artificial = config.imaging_load_artificial;
  o.artificial_file = config.imaging_load_artificial_file;
  o.capacity = config.imaging_load_capacity;
  return o;
}

double LoadScore(const LoadWeights& w, double cpu, double memory, double renders, double lag,
                 double artificial) {
  const double wc = std::max(0.0, w.cpu), wm = std::max(0.0, w.memory), wr = std::max(0.0, w.renders),
               wl = std::max(0.0, w.lag);
  const double sum = wc + wm + wr + wl;
  double measured = 0;
  if (sum > 0)
    measured = (wc * Clamp01(cpu) + wm * Clamp01(memory) + wr * Clamp01(renders) + wl * Clamp01(lag)) / sum;
  return Clamp01(measured + Clamp01(artificial));
}

LoadSampler::LoadSampler(LoadOptions options, Clock& clock) : options_(std::move(options)), clock_(clock) {
  capacity_ = options_.capacity > 0 ? options_.capacity : DetectCapacity();
}

double LoadSampler::DetectCapacity() const {
  // cgroup v2 cpu.max: "<quota> <period>" or "max <period>".
  if (auto text = ReadSmallFile(options_.cgroup_dir + "/cpu.max")) {
    std::istringstream in(*text);
    std::string quota;
    double period = 0;
    if (in >> quota >> period && quota != "max" && period > 0) {
      try {
        const double cores = std::stod(quota) / period;
        if (cores > 0) return cores;
      } catch (const std::exception&) {
      }
    }
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<double>(hw) : 1.0;
}

Result<LoadSampler::CpuReading> LoadSampler::ReadCpu() const {
  CpuReading r;
  r.at = clock_.Monotonic();
  if (auto text = ReadSmallFile(options_.cgroup_dir + "/cpu.stat")) {
    if (auto usage = FieldOf(*text, "usage_usec")) {
      r.cgroup = true;
      r.busy = *usage;
      return r;
    }
  }
  auto text = ReadSmallFile(options_.proc_dir + "/stat");
  if (!text)
    return Status::Permanent(Code::kIoError,
                             "load: neither cgroup cpu.stat nor " + options_.proc_dir + "/stat readable");
  // "cpu  user nice system idle iowait irq softirq steal guest guest_nice"
  std::istringstream in(*text);
  std::string name;
  in >> name;
  if (name != "cpu")
    return Status::Permanent(Code::kIoError, "load: unexpected " + options_.proc_dir + "/stat format");
  uint64_t v[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (auto& x : v)
    if (!(in >> x)) break;
  const uint64_t idle = v[3] + v[4];
  uint64_t total = 0;
  for (auto x : v) total += x;
  r.busy = total - idle;
  r.total = total;
  return r;
}

Result<double> LoadSampler::ReadMemory(std::string& source) const {
  auto current = ReadSmallFile(options_.cgroup_dir + "/memory.current");
  auto max = ReadSmallFile(options_.cgroup_dir + "/memory.max");
  if (current && max && Trim(*max) != "max") {
    try {
      const double c = std::stod(Trim(*current));
      const double m = std::stod(Trim(*max));
      if (m > 0) {
        source = "cgroup";
        return Clamp01(c / m);
      }
    } catch (const std::exception&) {
    }
  }
  auto meminfo = ReadSmallFile(options_.proc_dir + "/meminfo");
  if (!meminfo)
    return Status::Permanent(
        Code::kIoError, "load: neither cgroup memory files nor " + options_.proc_dir + "/meminfo readable");
  auto total = FieldOf(*meminfo, "MemTotal");
  auto available = FieldOf(*meminfo, "MemAvailable");
  if (!total || *total == 0 || !available)
    return Status::Permanent(Code::kIoError,
                             "load: " + options_.proc_dir + "/meminfo lacks MemTotal/MemAvailable");
  source = "proc";
  return Clamp01(1.0 - static_cast<double>(*available) / static_cast<double>(*total));
}

Result<double> LoadSampler::Artificial() const {
  if (options_.artificial_file.empty()) return Clamp01(options_.artificial);
  auto text = ReadSmallFile(options_.artificial_file);
  if (!text) return Clamp01(options_.artificial);  // file not written yet: the static knob
  const std::string t = Trim(*text);
  if (t.empty()) return Clamp01(options_.artificial);
  try {
    size_t pos = 0;
    const double v = std::stod(t, &pos);
    if (pos != t.size()) throw std::invalid_argument(t);
    return Clamp01(v);
  } catch (const std::exception&) {
    return Status::Permanent(Code::kInvalidArgument,
                             "load: " + options_.artificial_file + " does not hold a number: '" + t + "'");
  }
}

Result<LoadSample> LoadSampler::Sample(const LoadInputs& inputs) {
  LoadSample s;
  s.capacity = capacity_;
  FF_ASSIGN_OR_RETURN(CpuReading cpu, ReadCpu());
  s.cpu_source = cpu.cgroup ? "cgroup" : "proc";
  if (last_cpu_ && last_cpu_->cgroup == cpu.cgroup) {
    if (cpu.cgroup) {
      const double wall_us = std::chrono::duration<double, std::micro>(cpu.at - last_cpu_->at).count();
      if (wall_us > 0 && cpu.busy >= last_cpu_->busy)
        s.cpu = Clamp01(static_cast<double>(cpu.busy - last_cpu_->busy) / (wall_us * capacity_));
    } else if (cpu.total > last_cpu_->total && cpu.busy >= last_cpu_->busy) {
      s.cpu = Clamp01(static_cast<double>(cpu.busy - last_cpu_->busy) /
                      static_cast<double>(cpu.total - last_cpu_->total));
    }
  }
  last_cpu_ = cpu;
  FF_ASSIGN_OR_RETURN(s.memory, ReadMemory(s.memory_source));
  s.renders_in_flight = inputs.renders_in_flight;
  s.renders = Clamp01(static_cast<double>(inputs.renders_in_flight) / std::max(1, inputs.render_slots));
  s.lag_records = inputs.lag;
  s.lag = options_.lag_norm > 0 ? Clamp01(static_cast<double>(inputs.lag) / options_.lag_norm) : 0;
  FF_ASSIGN_OR_RETURN(s.artificial, Artificial());
  s.score = LoadScore(options_.weights, s.cpu, s.memory, s.renders, s.lag, s.artificial);
  return s;
}

}  // namespace faxflow
