#include <gmock/gmock.h>

#include <fstream>

#include "spineparse/plugin_api.hpp"
#include "spineparse/registry.hpp"
#include "test_util.hpp"

using namespace spineparse;
using spineparse::testing::test_plugin_dir;
using ::testing::HasSubstr;

namespace {
std::string plugin(const std::string& name) { return test_plugin_dir() + "/" + name + ".so"; }

std::string refusal(Registry& r, const std::string& path) {
  try {
    r.load_plugin(path);
  } catch (const PluginError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Registry, LoadsPluginAndItsStageKinds) {
  Registry r;
  const auto& info = r.load_plugin(plugin("spineparse_test"));
  EXPECT_EQ(info.name, "test");
  EXPECT_EQ(info.version, "1.2.3");
  ASSERT_NE(r.find("test.gate"), nullptr);
  EXPECT_EQ(r.find("test.serial")->concurrency, Concurrency::kSerial);
  EXPECT_EQ(r.plugin_of("test.pass"), "test");
  auto stage = r.create("test.pass", Params{});
  ASSERT_TRUE(stage);
  auto c = std::make_shared<const Case>("Case1", 0);
  EXPECT_EQ(stage->process(c), c);
}

TEST(Registry, LoadingTheSameFileTwiceIsHarmless) {
  Registry r;
  r.load_plugin(plugin("spineparse_test"));
  r.load_plugin(plugin("spineparse_test"));
  EXPECT_EQ(r.plugins().size(), 1u);
}

TEST(Registry, RefusesAnotherAbiMajor) {
  Registry r;
  const std::string msg = refusal(r, plugin("test_bad_abi"));
  EXPECT_THAT(msg, HasSubstr("built for ABI 99." + std::to_string(SPINEPARSE_ABI_MINOR)));
  EXPECT_THAT(msg, HasSubstr("major version differs"));
  EXPECT_THAT(msg, HasSubstr("bad_abi"));
  EXPECT_EQ(r.find("bad_abi.pass"), nullptr);
  EXPECT_TRUE(r.plugins().empty());
}

TEST(Registry, RefusesANewerAbiMinor) {
  Registry r;
  EXPECT_THAT(refusal(r, plugin("test_newer_minor")), HasSubstr("newer than this runtime"));
}

TEST(Registry, RefusesAnotherStringAbiAndSaysHowToRebuild) {
  Registry r;
  const std::string msg = refusal(r, plugin("test_old_string_abi"));
  EXPECT_THAT(msg, HasSubstr("C++ ABI itanium/libstdc++/pre-cxx11"));
  EXPECT_THAT(msg, HasSubstr(std::string("this runtime for ") + runtime_cxx_abi()));
  EXPECT_THAT(msg, HasSubstr("_GLIBCXX_USE_CXX11_ABI"));
  EXPECT_TRUE(r.plugins().empty());
}

TEST(Registry, RefusesAnotherLibTorchOnlyForPluginsThatUseIt) {
  Registry r;
  // Plugins that declare neither library load whatever LibTorch the build has.
  r.load_plugin(plugin("spineparse_test"));
  EXPECT_TRUE(r.plugins()[0].torch.empty());
  const std::string msg = refusal(r, plugin("test_other_torch"));
#ifdef SPINEPARSE_TEST_HOST_TORCH
  EXPECT_THAT(msg, HasSubstr("built against LibTorch 0.1.0"));
  EXPECT_THAT(msg, HasSubstr("this spineparse build uses LibTorch " SPINEPARSE_TEST_HOST_TORCH));
  EXPECT_THAT(msg, HasSubstr("rebuild the plugin against LibTorch " SPINEPARSE_TEST_HOST_TORCH));
#else
  EXPECT_TRUE(msg.empty()) << msg;  // a build without LibTorch: the first plugin decides
#endif
}

TEST(Registry, AcceptsAPluginOnTheBuildsItkAndRecordsIt) {
  Registry r;
  const auto& info = r.load_plugin(plugin("test_same_itk"));
  EXPECT_EQ(info.itk, SPINEPARSE_TEST_HOST_ITK);
  EXPECT_THAT(info.compiler, ::testing::StartsWith("gcc "));
}

TEST(Registry, RefusesDuplicateStageKindsAndKeepsTheFirst) {
  Registry r;
  r.load_plugin(plugin("spineparse_test"));
  const std::string msg = refusal(r, plugin("test_duplicate"));
  EXPECT_THAT(msg, HasSubstr("stage kind 'test.pass' is registered twice"));
  EXPECT_THAT(msg, HasSubstr("first by plugin 'test'"));
  EXPECT_EQ(r.plugin_of("test.pass"), "test");
  EXPECT_EQ(r.plugins().size(), 1u);
}

TEST(Registry, ARefusedPluginLeavesNoOutputChecksBehind) {
  Registry r;
  r.load_plugin(plugin("spineparse_test"));
  ASSERT_FALSE(refusal(r, plugin("test_duplicate")).empty());  // registered checks, then refused
  spineparse::testing::TempDir tmp;
  for (const char* name : {"a.shared_probe", "a.test_probe", "a.dup_probe"}) {
    std::ofstream(tmp / name) << "data";
  }
  // The refused plugin's library is unloaded: its checks must be gone and the ones it replaced
  // back, or these calls would run code that is no longer mapped.
  EXPECT_EQ(r.check_output((tmp / "a.shared_probe").string()), "checked by test");
  EXPECT_EQ(r.check_output((tmp / "a.test_probe").string()), "checked by test");
  EXPECT_EQ(r.check_output((tmp / "a.dup_probe").string()), "");
}

TEST(Registry, RefusesFilesThatAreNotPlugins) {
  Registry r;
  EXPECT_THAT(refusal(r, "/nonexistent/plugin.so"), HasSubstr("no such file"));
  spineparse::testing::TempDir tmp;
  const std::string junk = (tmp / "junk.so").string();
  { std::ofstream(junk) << "not an ELF file"; }
  EXPECT_THAT(refusal(r, junk), HasSubstr("cannot be loaded"));
  // A real shared library without the entry point.
  EXPECT_THAT(refusal(r, "/lib/x86_64-linux-gnu/libz.so.1"), HasSubstr("not a spineparse plugin"));
}

TEST(Registry, LoadFolderCollectsRefusalsAndLoadsTheRest) {
  Registry r;
  std::vector<std::string> errors;
  // The folder holds spineparse_test.so plus refused ones, only spineparse_* are candidates.
  EXPECT_EQ(r.load_folder(test_plugin_dir(), &errors), 1);
  EXPECT_TRUE(errors.empty());
  EXPECT_NE(r.find("test.source"), nullptr);
}

namespace {
struct WithParams : Stage {
  explicit WithParams(const Params& p) : limit(p.get_int("limit")) {}
  CasePtr process(const CasePtr& in) override { return in; }
  std::int64_t limit;
};
struct WithoutParams : Stage {
  CasePtr process(const CasePtr& in) override { return in; }
};
}  // namespace

// A stage class registers in one line; its instances get the node's parameters when it takes them.
TEST(Registry, AStageClassRegistersWithItsConstructor) {
  Registry r;
  StageDescription a, b;
  a.kind = "t.with";
  a.params = {{"limit", ParamType::kInt, ParamValue(std::int64_t{3}), false, "a limit"}};
  b.kind = "t.without";
  r.add_stage<WithParams>(a);
  r.add_stage<WithoutParams>(b);
  auto s = r.create("t.with", Params({{"limit", ParamValue(std::int64_t{7})}}));
  ASSERT_NE(dynamic_cast<WithParams*>(s.get()), nullptr);
  EXPECT_EQ(dynamic_cast<WithParams*>(s.get())->limit, 7);
  EXPECT_NE(dynamic_cast<WithoutParams*>(r.create("t.without", Params{}).get()), nullptr);
  EXPECT_THROW(r.add_stage<WithoutParams>(b), PluginError);
}

TEST(Registry, InProcessRegistrationRejectsDuplicates) {
  Registry r;
  StageDescription d;
  d.kind = "x.y";
  r.add_stage(d, [](const Params&) -> std::unique_ptr<Stage> { return nullptr; });
  EXPECT_THROW(r.add_stage(d, [](const Params&) -> std::unique_ptr<Stage> { return nullptr; }),
               PluginError);
}
