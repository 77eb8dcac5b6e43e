// Shards: one run's cohort split over several processes (cluster array tasks, MPI ranks, pods)
// that write into one shared output folder, each with its own record, combined afterwards by
// `spineparse merge`.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace spineparse {

struct Shard {
  int index = 0;
  int count = 0;       // 0: not sharded (the whole cohort)
  std::string source;  // where index and count came from ("--shard 1/3", "Slurm job array", ...)
  bool active() const { return count > 0; }
  std::string name() const;  // "1-of-3"
};

// Reads a variable of the environment; empty when unset (tests pass their own).
using EnvLookup = std::function<std::string(const std::string& name)>;
std::string process_env(const std::string& name);

// "K/N" (0 <= K < N), or "auto": the index and count from the environment of the engine that
// started the process (see shard_from_env). `shards` is --shards N (0 when not given): required
// where the environment gives only an index (Kubernetes Indexed Jobs), checked against the
// environment's count elsewhere. Throws std::invalid_argument with a message for the user.
Shard parse_shard(const std::string& spec, int shards, const EnvLookup& env = process_env);

// The first convention present, in this order: Slurm job arrays (SLURM_ARRAY_TASK_ID counted
// from SLURM_ARRAY_TASK_MIN in steps of SLURM_ARRAY_TASK_STEP, arrays with gaps refused), Open MPI
// (OMPI_COMM_WORLD_RANK/SIZE), MPICH and Intel MPI (PMI_RANK/PMI_SIZE), PMIx (PMIX_RANK; the
// count from SLURM_NTASKS or --shards), Slurm tasks (SLURM_PROCID/SLURM_NTASKS), torchrun
// (RANK/WORLD_SIZE), Kubernetes Indexed Jobs (JOB_COMPLETION_INDEX, count from --shards). MPI
// comes before Slurm tasks because mpirun inside a Slurm allocation inherits the allocation's
// SLURM_PROCID. Throws std::invalid_argument listing what it looked for when none is present.
Shard shard_from_env(int shards, const EnvLookup& env);

// The cases of shard `s` among `ids` (any order): positions into `ids`. The ids are ranked in
// natural order and rank r belongs to shard r mod N, so every case is in exactly one shard,
// shard sizes differ by at most one, and the same K/N always names the same cases.
std::vector<std::size_t> shard_members(const std::vector<std::string>& ids, const Shard& s);

// Where a shard's record goes: OUTPUT/shards/run-K-of-N.json.
std::string shard_record_path(const std::string& output_dir, const Shard& s);

}  // namespace spineparse
