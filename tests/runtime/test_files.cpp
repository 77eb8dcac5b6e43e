#include <gmock/gmock.h>

#include <algorithm>
#include <filesystem>

#include "spineparse/files.hpp"
#include "test_util.hpp"

using namespace spineparse;

TEST(Files, NaturalOrder) {
  std::vector<std::string> v = {"Case10", "Case2", "Case1", "Case002b", "Case100", "a"};
  std::sort(v.begin(), v.end(), natural_less);
  EXPECT_EQ(v, (std::vector<std::string>{"Case1", "Case2", "Case002b", "Case10", "Case100", "a"}));
}

TEST(Files, TempPathKeepsFolderAndCompoundExtension) {
  const std::string t = temp_path_for("/x/y/seg_Case1.nii.gz");
  EXPECT_EQ(std::filesystem::path(t).parent_path(), "/x/y");
  EXPECT_EQ(t.substr(t.size() - 7), ".nii.gz");
  EXPECT_EQ(std::filesystem::path(t).filename().string()[0], '.');
  EXPECT_NE(t, temp_path_for("/x/y/seg_Case1.nii.gz"));
}

TEST(Files, AtomicWriteReplacesAndLeavesNoTemporaries) {
  spineparse::testing::TempDir d;
  const std::string f = (d / "sub/a.json").string();
  write_file_atomic(f, "one");
  write_file_atomic(f, "two");
  EXPECT_EQ(read_file(f), "two");
  int n = 0;
  for (auto& e : std::filesystem::directory_iterator(d / "sub")) (void)e, ++n;
  EXPECT_EQ(n, 1);
  EXPECT_THROW(read_file((d / "missing").string()), std::runtime_error);
}
