// Shards: the partition of a cohort and every environment convention --shard auto reads.
#include <gmock/gmock.h>

#include <map>
#include <set>

#include "spineparse/shard.hpp"

using namespace spineparse;
using ::testing::HasSubstr;

namespace {
EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) {
    auto it = vars.find(name);
    return it == vars.end() ? std::string() : it->second;
  };
}
std::string refusal(const std::string& spec, int shards, std::map<std::string, std::string> vars) {
  try {
    parse_shard(spec, shards, env_of(std::move(vars)));
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "accepted";
}
std::vector<std::string> ids_of(const std::vector<std::string>& ids,
                                const std::vector<std::size_t>& at) {
  std::vector<std::string> out;
  for (auto i : at) out.push_back(ids[i]);
  return out;
}
}  // namespace

TEST(Shard, EveryCaseInExactlyOneShardAndSharesDifferByAtMostOne) {
  for (int cases : {0, 1, 2, 7, 30, 31}) {
    std::vector<std::string> ids;
    for (int i = cases; i >= 1; --i) ids.push_back("Case" + std::to_string(i));  // any order
    for (int n : {1, 2, 3, 4, 8}) {
      std::multiset<std::string> seen;
      std::size_t smallest = ids.size(), largest = 0;
      for (int k = 0; k < n; ++k) {
        const auto mine = shard_members(ids, Shard{k, n, "test"});
        for (auto i : mine) seen.insert(ids[i]);
        smallest = std::min(smallest, mine.size());
        largest = std::max(largest, mine.size());
        EXPECT_TRUE(std::is_sorted(mine.begin(), mine.end()));  // the source's order is kept
      }
      EXPECT_EQ(seen, std::multiset<std::string>(ids.begin(), ids.end())) << cases << "/" << n;
      EXPECT_LE(largest - smallest, 1u) << cases << "/" << n;
    }
  }
}

TEST(Shard, MembershipFollowsNaturalOrderNotTheListingOrder) {
  const std::vector<std::string> a = {"Case10", "Case2", "Case1", "Case3"};
  const std::vector<std::string> b = {"Case1", "Case2", "Case3", "Case10"};
  for (int k = 0; k < 2; ++k) {
    auto x = ids_of(a, shard_members(a, Shard{k, 2, ""}));
    auto y = ids_of(b, shard_members(b, Shard{k, 2, ""}));
    EXPECT_EQ(std::set<std::string>(x.begin(), x.end()), std::set<std::string>(y.begin(), y.end()));
  }
  EXPECT_EQ(ids_of(b, shard_members(b, Shard{0, 2, ""})),
            (std::vector<std::string>{"Case1", "Case3"}));
  EXPECT_EQ(shard_members(a, Shard{}).size(), 4u);  // not sharded: everything
}

TEST(Shard, ExplicitSpecAndItsRefusals) {
  const Shard s = parse_shard("2/5", 0, env_of({}));
  EXPECT_EQ(s.index, 2);
  EXPECT_EQ(s.count, 5);
  EXPECT_EQ(s.name(), "2-of-5");
  EXPECT_THAT(refusal("5/5", 0, {}), HasSubstr("outside 0..4"));
  EXPECT_THAT(refusal("1/0", 0, {}), HasSubstr("not >= 1"));
  EXPECT_THAT(refusal("-1/3", 0, {}), HasSubstr("not a whole number"));
  EXPECT_THAT(refusal("1", 0, {}), HasSubstr("give K/N"));
  EXPECT_THAT(refusal("1/3x", 0, {}), HasSubstr("not a whole number"));
  EXPECT_THAT(refusal("1/99999999", 0, {}), HasSubstr("not a whole number"));
  EXPECT_THAT(refusal("1/3", 4, {}), HasSubstr("--shards is 4"));
}

TEST(Shard, SlurmArraysCountFromMinInSteps) {
  auto s = parse_shard("auto", 0,
                       env_of({{"SLURM_ARRAY_TASK_ID", "7"},
                               {"SLURM_ARRAY_TASK_MIN", "1"},
                               {"SLURM_ARRAY_TASK_MAX", "9"},
                               {"SLURM_ARRAY_TASK_STEP", "2"},
                               {"SLURM_ARRAY_TASK_COUNT", "5"}}));
  EXPECT_EQ(s.index, 3);
  EXPECT_EQ(s.count, 5);
  EXPECT_THAT(s.source, HasSubstr("Slurm job array"));
  s = parse_shard("auto", 3,
                  env_of({{"SLURM_ARRAY_TASK_ID", "2"}, {"SLURM_ARRAY_TASK_COUNT", "3"}}));
  EXPECT_EQ(s.index, 2);
  // --array=0,2,5: gaps.
  EXPECT_THAT(refusal("auto", 0,
                      {{"SLURM_ARRAY_TASK_ID", "2"},
                       {"SLURM_ARRAY_TASK_MIN", "0"},
                       {"SLURM_ARRAY_TASK_MAX", "5"},
                       {"SLURM_ARRAY_TASK_STEP", "1"},
                       {"SLURM_ARRAY_TASK_COUNT", "3"}}),
              HasSubstr("gaps"));
  EXPECT_THAT(refusal("auto", 0, {{"SLURM_ARRAY_TASK_ID", "2"}}),
              HasSubstr("SLURM_ARRAY_TASK_COUNT is not"));
  EXPECT_THAT(refusal("auto", 4, {{"SLURM_ARRAY_TASK_ID", "2"}, {"SLURM_ARRAY_TASK_COUNT", "3"}}),
              HasSubstr("--shards is 4"));
  EXPECT_THAT(refusal("auto", 0,
                      {{"SLURM_ARRAY_TASK_ID", "4"},
                       {"SLURM_ARRAY_TASK_MIN", "1"},
                       {"SLURM_ARRAY_TASK_STEP", "2"},
                       {"SLURM_ARRAY_TASK_COUNT", "5"}}),
              HasSubstr("not min 1 plus a multiple of step 2"));
}

TEST(Shard, MpiTorchrunSlurmTasksAndKubernetes) {
  struct Case {
    std::map<std::string, std::string> env;
    int shards, index, count;
    std::string source;
  };
  const std::vector<Case> cases = {
      {{{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "3"}}, 0, 1, 3, "Open MPI"},
      {{{"PMI_RANK", "2"}, {"PMI_SIZE", "4"}}, 0, 2, 4, "MPICH/PMI"},
      {{{"PMIX_RANK", "1"}, {"SLURM_NTASKS", "2"}}, 0, 1, 2, "PMIx"},
      {{{"PMIX_RANK", "1"}}, 6, 1, 6, "PMIx"},
      {{{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "8"}}, 0, 3, 8, "Slurm tasks"},
      {{{"RANK", "0"}, {"WORLD_SIZE", "2"}}, 0, 0, 2, "torchrun"},
      {{{"JOB_COMPLETION_INDEX", "4"}}, 5, 4, 5, "Kubernetes"},
      // mpirun inside a Slurm allocation: the MPI rank, not the inherited SLURM_PROCID.
      {{{"SLURM_PROCID", "0"},
        {"SLURM_NTASKS", "2"},
        {"OMPI_COMM_WORLD_RANK", "2"},
        {"OMPI_COMM_WORLD_SIZE", "3"}},
       0,
       2,
       3,
       "Open MPI"},
  };
  for (const auto& c : cases) {
    const Shard s = parse_shard("auto", c.shards, env_of(c.env));
    EXPECT_EQ(s.index, c.index) << c.source;
    EXPECT_EQ(s.count, c.count) << c.source;
    EXPECT_THAT(s.source, HasSubstr(c.source));
  }
  EXPECT_THAT(refusal("auto", 0, {{"JOB_COMPLETION_INDEX", "1"}}),
              HasSubstr("give the count with --shards N"));
  EXPECT_THAT(refusal("auto", 0, {{"PMIX_RANK", "1"}}), HasSubstr("--shards N"));
  EXPECT_THAT(refusal("auto", 2, {{"JOB_COMPLETION_INDEX", "2"}}), HasSubstr("outside 0..1"));
  EXPECT_THAT(refusal("auto", 0, {{"OMPI_COMM_WORLD_RANK", "3"}, {"OMPI_COMM_WORLD_SIZE", "3"}}),
              HasSubstr("outside 0..2"));
  EXPECT_THAT(refusal("auto", 0, {{"OMPI_COMM_WORLD_RANK", "x"}, {"OMPI_COMM_WORLD_SIZE", "3"}}),
              HasSubstr("OMPI_COMM_WORLD_RANK is 'x'"));
  EXPECT_THAT(refusal("auto", 3, {{"RANK", "0"}, {"WORLD_SIZE", "2"}}), HasSubstr("--shards is 3"));
  // Nothing there: the error lists every convention it looked for.
  const std::string none = refusal("auto", 0, {{"RANK", "1"}});  // RANK without WORLD_SIZE
  for (const char* v : {"SLURM_ARRAY_TASK_ID", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK",
                        "SLURM_PROCID", "RANK/WORLD_SIZE", "JOB_COMPLETION_INDEX"})
    EXPECT_THAT(none, HasSubstr(v));
}

TEST(Shard, RecordPathPerShard) {
  EXPECT_EQ(shard_record_path("/o", Shard{1, 3, ""}), "/o/shards/run-1-of-3.json");
}
