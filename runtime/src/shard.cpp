#include "spineparse/shard.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <numeric>
#include <stdexcept>

#include "spineparse/files.hpp"

namespace spineparse {

namespace {

constexpr long kMaxShards = 1000000;

[[noreturn]] void refuse(const std::string& message) { throw std::invalid_argument(message); }

// A decimal integer in [0, kMaxShards], nothing else; `what` names it in the error.
long parse_count(const std::string& text, const std::string& what) {
  const bool digits =
      !text.empty() && text.size() <= 7 &&
      std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || std::stol(text) > kMaxShards)
    refuse(what + " is '" + text + "', not a whole number from 0 to " + std::to_string(kMaxShards));
  return std::stol(text);
}

Shard checked(long index, long count, const std::string& source) {
  if (count < 1) refuse(source + ": the shard count is " + std::to_string(count) + ", not >= 1");
  if (index < 0 || index >= count)
    refuse(source + ": shard index " + std::to_string(index) + " is outside 0.." +
           std::to_string(count - 1));
  return {static_cast<int>(index), static_cast<int>(count), source};
}

// --shards N against a count the environment gives.
void agree(long env_count, int shards, const std::string& source) {
  if (shards > 0 && shards != env_count)
    refuse(source + " gives " + std::to_string(env_count) + " shards but --shards is " +
           std::to_string(shards));
}

Shard from_slurm_array(int shards, const EnvLookup& env) {
  const std::string src = "Slurm job array";
  const std::string count_text = env("SLURM_ARRAY_TASK_COUNT");
  if (count_text.empty())
    refuse(src + ": SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not");
  const long id = parse_count(env("SLURM_ARRAY_TASK_ID"), "SLURM_ARRAY_TASK_ID");
  const long count = parse_count(count_text, "SLURM_ARRAY_TASK_COUNT");
  const std::string min_t = env("SLURM_ARRAY_TASK_MIN"), max_t = env("SLURM_ARRAY_TASK_MAX"),
                    step_t = env("SLURM_ARRAY_TASK_STEP");
  const long min = min_t.empty() ? 0 : parse_count(min_t, "SLURM_ARRAY_TASK_MIN");
  const long step = step_t.empty() ? 1 : parse_count(step_t, "SLURM_ARRAY_TASK_STEP");
  if (step < 1) refuse(src + ": SLURM_ARRAY_TASK_STEP is 0");
  if (!max_t.empty()) {
    const long max = parse_count(max_t, "SLURM_ARRAY_TASK_MAX");
    if (max < min || (max - min) % step != 0 || (max - min) / step + 1 != count)
      refuse(src + ": the array's task ids have gaps (min " + min_t + ", max " + max_t + ", step " +
             std::to_string(step) + ", " + count_text +
             " tasks); submit a contiguous array such as --array=0-" + std::to_string(count - 1) +
             " so that every shard has a task");
  }
  if (id < min || (id - min) % step != 0)
    refuse(src + ": task id " + std::to_string(id) + " is not min " + std::to_string(min) +
           " plus a multiple of step " + std::to_string(step));
  agree(count, shards, src);
  return checked((id - min) / step, count, src + " (task " + std::to_string(id) + ")");
}

// A rank/size pair of variables; the size may come from --shards when `size_var` is empty.
Shard from_pair(const EnvLookup& env, const std::string& rank_var, const std::string& size_var,
                int shards, const std::string& src) {
  const long rank = parse_count(env(rank_var), rank_var);
  std::string size_text = size_var.empty() ? "" : env(size_var);
  if (size_text.empty()) {
    if (shards <= 0)
      refuse(src + ": " + rank_var + " is set but " +
             (size_var.empty() ? std::string("the environment has no shard count")
                               : size_var + " is not") +
             "; give the count with --shards N");
    return checked(rank, shards, src);
  }
  const long size = parse_count(size_text, size_var);
  agree(size, shards, src);
  return checked(rank, size, src);
}

}  // namespace

std::string Shard::name() const { return std::to_string(index) + "-of-" + std::to_string(count); }

std::string process_env(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  return v ? v : "";
}

Shard shard_from_env(int shards, const EnvLookup& env) {
  if (!env("SLURM_ARRAY_TASK_ID").empty()) return from_slurm_array(shards, env);
  if (!env("OMPI_COMM_WORLD_RANK").empty())
    return from_pair(env, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", shards, "Open MPI");
  if (!env("PMI_RANK").empty()) return from_pair(env, "PMI_RANK", "PMI_SIZE", shards, "MPICH/PMI");
  if (!env("PMIX_RANK").empty()) {
    const std::string size_var = env("SLURM_NTASKS").empty() ? "" : "SLURM_NTASKS";
    return from_pair(env, "PMIX_RANK", size_var, shards, "PMIx");
  }
  if (!env("SLURM_PROCID").empty() && !env("SLURM_NTASKS").empty())
    return from_pair(env, "SLURM_PROCID", "SLURM_NTASKS", shards, "Slurm tasks");
  if (!env("RANK").empty() && !env("WORLD_SIZE").empty())
    return from_pair(env, "RANK", "WORLD_SIZE", shards, "torchrun");
  if (!env("JOB_COMPLETION_INDEX").empty())
    return from_pair(env, "JOB_COMPLETION_INDEX", "", shards, "Kubernetes Indexed Job");
  refuse(
      "--shard auto: no shard index in the environment; looked for SLURM_ARRAY_TASK_ID (+ "
      "SLURM_ARRAY_TASK_MIN/STEP/COUNT), OMPI_COMM_WORLD_RANK/SIZE, PMI_RANK/PMI_SIZE, PMIX_RANK, "
      "SLURM_PROCID/SLURM_NTASKS, RANK/WORLD_SIZE and JOB_COMPLETION_INDEX (with --shards N); "
      "start it as a Slurm array task or under mpirun/srun/torchrun, or give --shard K/N");
}

Shard parse_shard(const std::string& spec, int shards, const EnvLookup& env) {
  if (shards < 0 || shards > kMaxShards)
    refuse("--shards is " + std::to_string(shards) + ", not from 1 to " +
           std::to_string(kMaxShards));
  if (spec == "auto") return shard_from_env(shards, env);
  const auto slash = spec.find('/');
  if (slash == std::string::npos)
    refuse("--shard is '" + spec + "': give K/N (shard K of N, 0 <= K < N) or auto");
  const long k = parse_count(spec.substr(0, slash), "--shard's index");
  const long n = parse_count(spec.substr(slash + 1), "--shard's count");
  agree(n, shards, "--shard " + spec);
  return checked(k, n, "--shard " + spec);
}

std::vector<std::size_t> shard_members(const std::vector<std::string>& ids, const Shard& s) {
  std::vector<std::size_t> order(ids.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  if (!s.active()) return order;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return natural_less(ids[a], ids[b]); });
  std::vector<std::size_t> mine;
  for (std::size_t r = static_cast<std::size_t>(s.index); r < order.size();
       r += static_cast<std::size_t>(s.count))
    mine.push_back(order[r]);
  std::sort(mine.begin(), mine.end());
  return mine;
}

std::string shard_record_path(const std::string& output_dir, const Shard& s) {
  return (std::filesystem::path(output_dir) / "shards" / ("run-" + s.name() + ".json")).string();
}

}  // namespace spineparse
