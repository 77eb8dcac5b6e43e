// spineparse slurm: a sharded run as a Slurm job array plus a merge job that waits for it.
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "commands.hpp"
#include "spineparse/files.hpp"
#include "spineparse/graph.hpp"
#include "spineparse/registry.hpp"

namespace spineparse::tools::cli {
namespace fs = std::filesystem;

namespace {

struct SlurmArgs {
  std::string graph, input, output;
  int shards = 0;
  std::vector<std::string> sets, plugin_dirs, sbatch_args;
  bool submit = false;
};

std::string absolute(const std::string& p) { return fs::absolute(p).lexically_normal().string(); }

std::string self_exe() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("spineparse") : exe.string();
}

// GPU requests go to the array's tasks only; the merge job needs none.
bool gpu_request(const std::string& arg) {
  for (const char* p : {"--gres", "--gpus", "--gpu-", "-G"})
    if (arg.rfind(p, 0) == 0) return true;
  return false;
}

// Checks --sbatch-arg values: options of sbatch, one line each, not the ones we set.
void check_sbatch_args(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a.empty() || a[0] != '-' || a.find('\n') != std::string::npos)
      throw std::invalid_argument("--sbatch-arg '" + a +
                                  "' is not one sbatch option (write --sbatch-arg=--time=2:00:00)");
    for (const char* ours : {"--array", "-a", "--dependency", "-d", "--output", "-o"})
      if (a == ours || a.rfind(std::string(ours) + "=", 0) == 0 ||
          (std::string(ours).size() == 2 && a.rfind(ours, 0) == 0))
        throw std::invalid_argument("--sbatch-arg " + a +
                                    ": spineparse sets the array, dependency and log files itself");
  }
}

std::string header(const std::string& name, const std::string& log,
                   const std::vector<std::string>& extra) {
  std::string s = "#!/bin/bash\n#SBATCH --job-name=" + name + "\n#SBATCH --output=" + log + "\n";
  for (const auto& a : extra) s += "#SBATCH " + a + "\n";
  return s;
}

std::string array_script(const SlurmArgs& a, const fs::path& dir) {
  std::string s = header("spineparse", (dir / "shard-%a.log").string(), a.sbatch_args);
  s.insert(s.find("#SBATCH --output"), "#SBATCH --array=0-" + std::to_string(a.shards - 1) + "\n");
  std::string cmd = shell_quote(self_exe()) + " run " + shell_quote(absolute(a.graph)) +
                    " --input " + shell_quote(absolute(a.input)) + " --output " +
                    shell_quote(absolute(a.output));
  for (const auto& x : a.sets) cmd += " --set " + shell_quote(x);
  for (const auto& d : a.plugin_dirs) cmd += " --plugin-dir " + shell_quote(absolute(d));
  cmd += " --shard auto --shards " + std::to_string(a.shards) + " --resume --progress plain";
  return s +
         "# One shard of the cohort per array task (--resume: a requeued task continues where it "
         "stopped).\nexec " +
         cmd + "\n";
}

std::string merge_script(const SlurmArgs& a, const fs::path& dir) {
  std::vector<std::string> extra;
  for (const auto& x : a.sbatch_args)
    if (!gpu_request(x)) extra.push_back(x);
  std::string cmd = shell_quote(self_exe()) + " merge " + shell_quote(absolute(a.output));
  for (const auto& d : a.plugin_dirs) cmd += " --plugin-dir " + shell_quote(absolute(d));
  return header("spineparse-merge", (dir / "merge.log").string(), extra) +
         "# After every array task has ended (afterany): the cohort's run.json, metrics and "
         "report.\nexec " +
         cmd + "\n";
}

// Runs `sbatch --parsable ARGS` and returns the job id it prints.
std::string sbatch(const std::string& args) {
  const std::string cmd = "sbatch --parsable " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run sbatch");
  std::string out;
  std::array<char, 512> buf;
  while (std::size_t n = std::fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  const int status = ::pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  const std::string id = out.substr(0, out.find(';'));
  if (status != 0 || id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
    throw std::runtime_error("sbatch " + args + " failed: " + out);
  return id;
}

void write_scripts(const SlurmArgs& a) {
  const fs::path dir = fs::path(absolute(a.output)) / "slurm";
  fs::create_directories(dir);
  const std::string run = (dir / "run.sbatch").string(), merge = (dir / "merge.sbatch").string();
  write_file_atomic(run, array_script(a, dir));
  write_file_atomic(merge, merge_script(a, dir));
  fs::permissions(run, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add);
  fs::permissions(merge, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add);
  if (!a.submit) {
    std::printf(
        "wrote %s (%d array tasks) and %s\nsubmit with:\n  jid=$(sbatch --parsable %s)\n"
        "  sbatch --dependency=afterany:${jid%%%%;*} %s\n(or run again with --submit)\n",
        run.c_str(), a.shards, merge.c_str(), shell_quote(run).c_str(), shell_quote(merge).c_str());
    return;
  }
  const std::string array_id = sbatch(shell_quote(run));
  const std::string merge_id =
      sbatch("--dependency=afterany:" + array_id + " " + shell_quote(merge));
  std::printf(
      "submitted array job %s (%d tasks, logs %s/shard-N.log) and merge job %s (after "
      "it, log %s/merge.log)\nwatch: squeue -j %s,%s\nresults: %s/run.json\n",
      array_id.c_str(), a.shards, dir.c_str(), merge_id.c_str(), dir.c_str(), array_id.c_str(),
      merge_id.c_str(), absolute(a.output).c_str());
}

struct TrainArrayArgs {
  std::string what, data, output, config, coarse_weights;
  std::vector<std::string> sbatch_args;
  bool submit = false;
};

// `spineparse train WHAT ...` with the given fold argument.
std::string train_command(const TrainArrayArgs& a, const std::string& fold) {
  std::string cmd = shell_quote(self_exe()) + " train " + a.what + " --data " +
                    shell_quote(absolute(a.data)) + " --output " + shell_quote(absolute(a.output)) +
                    " --fold " + fold + " --resume";
  if (!a.config.empty()) cmd += " --config " + shell_quote(absolute(a.config));
  if (!a.coarse_weights.empty())
    cmd += " --coarse-weights " + shell_quote(absolute(a.coarse_weights));
  return cmd;
}

// The five folds as a five-task array; for the fine network, the cross-validated evaluation
// (train fine --fold all --resume: the folds are done, so it only evaluates) once all succeeded.
void write_train_scripts(const TrainArrayArgs& a) {
  const fs::path dir = fs::path(absolute(a.output)) / "slurm";
  fs::create_directories(dir);
  const std::string folds = (dir / ("train-" + a.what + ".sbatch")).string();
  std::string s = header("spineparse-train-" + a.what,
                         (dir / ("train-" + a.what + "-fold%a.log")).string(), a.sbatch_args);
  s.insert(s.find("#SBATCH --output"), "#SBATCH --array=1-5\n");
  write_file_atomic(folds, s + "# Fold K of the five-fold cross-validation per array task.\nexec " +
                               train_command(a, "\"$SLURM_ARRAY_TASK_ID\"") + "\n");
  std::string cv;
  if (a.what == "fine") {
    cv = (dir / "train-fine-cv.sbatch").string();
    // --kill-on-invalid-dep: a failed fold cancels it instead of leaving it pending forever.
    write_file_atomic(
        cv, header("spineparse-train-cv", (dir / "train-fine-cv.log").string(), a.sbatch_args) +
                "#SBATCH --kill-on-invalid-dep=yes\n# After the five folds: their models segment "
                "their test folds.\nexec " +
                train_command(a, "all") + "\n");
  }
  if (!a.submit) {
    std::printf("wrote %s (folds 1-5)%s%s\nsubmit with: sbatch %s%s\n", folds.c_str(),
                cv.empty() ? "" : " and ", cv.c_str(), shell_quote(folds).c_str(),
                cv.empty() ? "" : "  (then the cv script with --dependency=afterok:JOBID)");
    return;
  }
  const std::string id = sbatch(shell_quote(folds));
  std::printf("submitted training array job %s (folds 1-5, logs %s/train-%s-fold<K>.log)\n",
              id.c_str(), dir.c_str(), a.what.c_str());
  if (!cv.empty())
    std::printf("submitted cross-validation job %s (after every fold succeeds)\n",
                sbatch("--dependency=afterok:" + id + " " + shell_quote(cv)).c_str());
}

}  // namespace

void add_slurm(CLI::App& app) {
  auto a = std::make_shared<SlurmArgs>();
  auto* sub = app.add_subcommand(
      "slurm",
      "Write (and with --submit, submit) a sharded run as a Slurm job array and a merge job");
  sub->add_option("graph", a->graph, "graph file (JSON)")->required()->check(CLI::ExistingFile);
  sub->add_option("--input,-i", a->input, "dataset folder")->required()->check(CLI::ExistingPath);
  sub->add_option("--output,-o", a->output, "output folder on a file system every node shares")
      ->required();
  sub->add_option("--shards", a->shards, "array tasks, one shard each")
      ->required()
      ->check(CLI::Range(1, 100000));
  sub->add_option("--set", a->sets, "override a parameter: NODE.PARAM=VALUE (repeatable)");
  sub->add_option("--plugin-dir", a->plugin_dirs, "extra folder to load plugins from (repeatable)");
  sub->add_option("--sbatch-arg", a->sbatch_args,
                  "an sbatch option for the jobs, e.g. --sbatch-arg=--time=2:00:00, "
                  "--sbatch-arg=--partition=gpu, --sbatch-arg=--gres=gpu:1 (GPU requests go to "
                  "the array only; repeatable)");
  sub->add_flag("--submit", a->submit, "submit both jobs with sbatch and print their ids");
  sub->callback([a] {
    Registry registry;  // the graph is checked here, not in the queue
    const bool plugins_ok = load_default_plugins(registry, a->plugin_dirs);
    GraphLoad g = load_graph_file(a->graph, registry, a->sets);
    for (const auto& i : g.issues) std::fprintf(stderr, "  %s\n", i.to_string().c_str());
    if (!g.ok() || !plugins_ok) return set_exit_code(2);
    run_command([&] {
      check_sbatch_args(a->sbatch_args);
      write_scripts(*a);
      return 0;
    });
  });
}

}  // namespace spineparse::tools::cli

namespace spineparse::tools::cli {

void add_slurm_train(CLI::App& app) {
  auto a = std::make_shared<TrainArrayArgs>();
  auto* sub = app.add_subcommand(
      "slurm-train",
      "Write (and with --submit, submit) five-fold training as a Slurm job array (one fold each)");
  sub->add_option("what", a->what, "coarse or fine")
      ->required()
      ->check(CLI::IsMember({"coarse", "fine"}));
  sub->add_option("--data", a->data, "dataset folder with masks")
      ->required()
      ->check(CLI::ExistingDirectory);
  sub->add_option("--output,-o", a->output, "training folder on a file system every node shares")
      ->required();
  sub->add_option("--config", a->config, "training configuration (JSON)")->check(CLI::ExistingFile);
  sub->add_option("--coarse-weights", a->coarse_weights, "fine: GCSN weights for every fold")
      ->check(CLI::ExistingFile);
  sub->add_option("--sbatch-arg", a->sbatch_args,
                  "an sbatch option for the jobs, e.g. --sbatch-arg=--gres=gpu:1 (repeatable)");
  sub->add_flag("--submit", a->submit, "submit with sbatch and print the job ids");
  sub->callback([a] {
    run_command([&] {
      check_sbatch_args(a->sbatch_args);
      write_train_scripts(*a);
      return 0;
    });
  });
}

}  // namespace spineparse::tools::cli
