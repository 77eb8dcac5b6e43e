// The manual stays true to the program: every `spineparse` command line in the code blocks of the
// README and of the guides in docs/ is accepted by that subcommand's own parser (parsed, not run),
// and every stage kind the shipped plugins register is named in the README or in docs/plugins.md.
#include <gmock/gmock.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "build_paths.hpp"
#include "commands.hpp"
#include "spineparse/files.hpp"
#include "spineparse/registry.hpp"

namespace {
namespace fs = std::filesystem;

std::string source_file(const std::string& relative) {
  return spineparse::read_file((fs::path(SPINEPARSE_SOURCE_DIR) / relative).string());
}

// The lines of the fenced code blocks that hold shell commands (no language, sh, bash, console),
// with continuation lines (ending in '\') joined.
std::vector<std::string> shell_lines(const std::string& markdown) {
  std::vector<std::string> out;
  std::istringstream in(markdown);
  std::string line, pending;
  bool in_block = false, shell = false;
  while (std::getline(in, line)) {
    if (line.rfind("```", 0) == 0) {
      const std::string lang = line.substr(3);
      shell = !in_block && (lang.empty() || lang == "sh" || lang == "bash" || lang == "console");
      in_block = !in_block;
      continue;
    }
    if (!in_block || !shell) continue;
    if (!line.empty() && line.back() == '\\') {
      pending += line.substr(0, line.size() - 1) + " ";
      continue;
    }
    out.push_back(pending + line);
    pending.clear();
  }
  return out;
}

// Shell words of one line, split into commands at unquoted ;, &&, || and |; a word starting with
// an unquoted # ends the line.
std::vector<std::vector<std::string>> commands_of(const std::string& line) {
  std::vector<std::vector<std::string>> cmds(1);
  std::string word;
  bool has_word = false;
  auto flush = [&] {
    if (has_word) cmds.back().push_back(word);
    word.clear();
    has_word = false;
  };
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == '\'' || c == '"') {
      const std::size_t end = line.find(c, i + 1);
      word += line.substr(i + 1, end == std::string::npos ? std::string::npos : end - i - 1);
      has_word = true;
      if (end == std::string::npos) break;
      i = end;
    } else if (c == ' ' || c == '\t') {
      flush();
    } else if (c == '#' && !has_word) {
      break;
    } else if (c == ';' || c == '|' || c == '&') {
      flush();
      if (i + 1 < line.size() && line[i + 1] == c) ++i;
      cmds.emplace_back();
    } else {
      word += c;
      has_word = true;
    }
  }
  flush();
  return cmds;
}

// The arguments after the `spineparse` word of each command that runs it: the command's first word
// after any VAR=value assignments, or behind a launcher (mpirun, mpiexec, srun, env, time).
std::vector<std::vector<std::string>> spineparse_invocations(const std::string& markdown) {
  auto is_spineparse = [](const std::string& w) { return fs::path(w).filename() == "spineparse"; };
  std::vector<std::vector<std::string>> out;
  for (const auto& line : shell_lines(markdown)) {
    for (const auto& cmd : commands_of(line)) {
      auto it = cmd.begin();
      while (it != cmd.end() && it->find('=') != std::string::npos && (*it)[0] != '-') ++it;
      if (it == cmd.end()) continue;
      static const std::set<std::string> kLaunchers = {"mpirun", "mpiexec", "srun", "env", "time"};
      if (kLaunchers.count(*it)) it = std::find_if(it, cmd.end(), is_spineparse);
      if (it != cmd.end() && is_spineparse(*it)) out.emplace_back(it + 1, cmd.end());
    }
  }
  return out;
}

// Thrown once the whole command line is parsed and checked, before any subcommand runs.
struct Parsed {};

// Parses args with the real subcommands, the checks that a named file or folder exists switched
// off; nothing runs. Returns the parser's message, empty when accepted.
std::string parse_error(const std::vector<std::string>& args) {
  CLI::App app{"spineparse"};
  app.require_subcommand(1);
  spineparse::tools::cli::add_commands(app);
  std::vector<CLI::App*> subs = app.get_subcommands([](CLI::App*) { return true; });
  for (std::size_t k = 0; k < subs.size(); ++k) {  // nested ones too (train coarse|fine)
    for (CLI::App* nested : subs[k]->get_subcommands([](CLI::App*) { return true; }))
      subs.push_back(nested);
  }
  for (CLI::App* sub : subs) {
    for (CLI::Option* opt : sub->get_options()) {
      for (int i = 0;; ++i) {  // CLI::ExistingFile, ExistingDirectory, ExistingPath
        CLI::Validator* v = nullptr;
        try {
          v = opt->get_validator(i);
        } catch (const CLI::OptionNotFound&) {
          break;
        }
        const std::string what = v->get_description();
        if (what == "FILE" || what == "DIR" || what == "PATH(existing)") v->active(false);
      }
    }
  }
  // The top level's parse-complete callback runs after every check and before the subcommands'
  // callbacks (which own the variables the options write to, so they stay as they are).
  app.parse_complete_callback([] { throw Parsed{}; });
  std::vector<std::string> reversed(args.rbegin(), args.rend());
  try {
    app.parse(reversed);
  } catch (const Parsed&) {
    return "";
  } catch (const CLI::ParseError& e) {
    return std::string(e.get_name()) + ": " + e.what();
  }
  return "parsed, but the subcommand ran";
}

std::string joined(const std::vector<std::string>& args) {
  std::string s = "spineparse";
  for (const auto& a : args) s += " " + a;
  return s;
}

TEST(Manual, TheParserCheckCanFail) {
  EXPECT_EQ(parse_error({"run", "graphs/demo.json", "--input", "in", "--output", "out"}), "");
  EXPECT_NE(parse_error({"run", "graphs/demo.json", "--no-such-option"}), "");
  EXPECT_NE(parse_error({"no-such-command"}), "");
  EXPECT_NE(parse_error({"synth", "--cases", "0"}), "");  // range checks stay on
}

// Subcommands only builds with LibTorch have (the sanitizer builds have none).
[[maybe_unused]] bool needs_libtorch(const std::vector<std::string>& args) {
  static const std::set<std::string> kTorchOnly = {"calibrate", "import-checkpoint", "train",
                                                   "slurm-train"};
  return !args.empty() && kTorchOnly.count(args[0]) != 0;
}

TEST(Manual, EveryCommandLineOfTheManualParses) {
  const auto readme = spineparse_invocations(source_file("README.md"));
  ASSERT_GE(readme.size(), 10u) << "the README's code blocks should show the commands";
  std::vector<std::string> guides = {"README.md"};
  for (const auto& e : fs::directory_iterator(fs::path(SPINEPARSE_SOURCE_DIR) / "docs")) {
    if (e.path().extension() == ".md") guides.push_back("docs/" + e.path().filename().string());
  }
  ASSERT_GE(guides.size(), 7u);
  for (const auto& guide : guides) {
    for (const auto& args : spineparse_invocations(source_file(guide))) {
#ifndef SPINEPARSE_WITH_TORCH
      if (needs_libtorch(args)) continue;
#endif
      EXPECT_EQ(parse_error(args), "") << guide << ": " << joined(args);
    }
  }
}

TEST(Manual, EveryShippedStageKindIsDocumented) {
  spineparse::Registry registry;
  ASSERT_TRUE(spineparse::tools::cli::load_default_plugins(registry, {}));
  const std::string docs = source_file("README.md") + source_file("docs/plugins.md");
  const auto kinds = registry.kinds();
  ASSERT_GE(kinds.size(), 10u);
  for (const auto* d : kinds) {
    EXPECT_NE(docs.find("`" + d->kind + "`"), std::string::npos)
        << "stage kind " << d->kind << " is named neither in README.md nor in docs/plugins.md";
  }
}

}  // namespace
