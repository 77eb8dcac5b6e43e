// io.read_dataset: layouts, ordering, and every class of bad input failing only its own case.
#include <gmock/gmock.h>

#include <cmath>
#include <fstream>

#include "io/dataset.hpp"
#include "io/volume_io.hpp"
#include "io_fixtures.hpp"
#include "io_stages.hpp"
#include "read_dataset.hpp"
#include "spineparse/executor.hpp"
#include "spineparse/files.hpp"
#include "spineparse/graph.hpp"
#include "test_util.hpp"

using namespace spineparse;
using spineparse::testing::TempDir;
using spineparse::testing::write_itk;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

namespace {

void write_good(const fs::path& p, std::size_t slices = 3, bool rotate = true) {
  write_itk<short, 3>(
      p.string(), {8, 10, slices}, [](auto i) { return 50 + i[0] * 3 + i[1] * 5 + i[2]; },
      {0.5, 0.5, 4.0}, rotate);
}

std::string bytes_of(const fs::path& p) { return read_file(p.string()); }

class ReadDatasetTest : public ::testing::Test {
 protected:
  void SetUp() override { register_io_stages(registry_); }
  RunReport run(const std::string& input, const std::vector<std::string>& sets = {}) {
    const std::string graph = R"({"schema_version": 1, "max_in_flight": 3, "nodes": [
      {"id": "read", "stage": "io.read_dataset"},
      {"id": "normalise", "stage": "io.normalise"},
      {"id": "write", "stage": "io.write_nifti", "params": {"field": "image", "name": "norm_{id}.nii.gz"}}]})";
    auto g = load_graph_text(graph, "g.json", registry_, sets);
    EXPECT_TRUE(g.ok());
    RunOptions o;
    o.input_dir = input;
    o.output_dir = out_.str();
    o.progress = "none";
    return run_graph(*g.graph, registry_, o);
  }
  const CaseOutcome& outcome(const RunReport& r, const std::string& id) {
    for (const auto& c : r.cases) {
      if (c.id == id) return c;
    }
    ADD_FAILURE() << "no case " << id;
    return r.cases.at(0);
  }
  Registry registry_;
  TempDir in_, out_;
};

}  // namespace

TEST_F(ReadDatasetTest, OriginalLayoutPairsMasksAndSortsNaturally) {
  fs::create_directories(in_ / "original_mr");
  fs::create_directories(in_ / "mask");
  for (int i : {10, 2, 1})
    write_good(in_ / "original_mr" / ("Case" + std::to_string(i) + ".nii.gz"));
  write_itk<unsigned char, 3>((in_ / "mask" / "mask_case2.nii.gz").string(), {8, 10, 3},
                              [](auto i) { return i[0] % 3; }, {0.5, 0.5, 4.0}, true);
  { std::ofstream(in_ / "original_mr" / ".Case3.tmp-1-0.nii.gz") << "partial"; }  // hidden temp
  auto seeds = io::list_dataset(in_.str(), "auto");
  ASSERT_EQ(seeds.size(), 3u);
  EXPECT_EQ(seeds[0].id, "Case1");
  EXPECT_EQ(seeds[1].id, "Case2");
  EXPECT_EQ(seeds[2].id, "Case10");
  EXPECT_THAT(seeds[1].attrs["mask_path"], HasSubstr("mask_case2.nii.gz"));
  EXPECT_EQ(seeds[0].attrs.count("mask_path"), 0u);
  // The original_mr folder itself works as input too.
  EXPECT_EQ(io::list_dataset((in_ / "original_mr").string(), "auto").size(), 3u);

  auto r = run(in_.str());
  EXPECT_EQ(r.ok, 3);  // cases without a mask are processed
  EXPECT_TRUE(fs::exists(out_ / "norm_Case10.nii.gz"));
}

TEST_F(ReadDatasetTest, FlatLayoutFindsOtherFormatsAndMaskFiles) {
  write_good(in_ / "b.nrrd");
  write_good(in_ / "a.mha");
  write_good(in_ / "c.nii");
  write_itk<unsigned char, 3>((in_ / "mask_b.nrrd").string(), {8, 10, 3}, [](auto) { return 1; },
                              {0.5, 0.5, 4.0}, true);
  fs::create_directories(in_ / "masks");
  write_itk<unsigned char, 3>((in_ / "masks" / "c.nii").string(), {8, 10, 3},
                              [](auto) { return 2; }, {0.5, 0.5, 4.0}, true);
  { std::ofstream(in_ / "notes.txt") << "not a volume"; }
  auto seeds = io::list_dataset(in_.str(), "auto");
  ASSERT_EQ(seeds.size(), 3u);
  EXPECT_EQ(seeds[0].id, "a");
  EXPECT_THAT(seeds[1].attrs["mask_path"], HasSubstr("mask_b.nrrd"));
  EXPECT_THAT(seeds[2].attrs["mask_path"], HasSubstr("masks/c.nii"));
  auto r = run(in_.str(), {"read.cases=c,a"});
  ASSERT_EQ(r.cases.size(), 2u);
  EXPECT_EQ(r.cases[0].id, "c");
  EXPECT_EQ(r.ok, 2);
}

TEST_F(ReadDatasetTest, EachBadInputFailsOnlyItsCaseWithAClearReason) {
  // Good cases.
  for (const char* id : {"good1", "good2", "good3"})
    write_good(in_ / (std::string(id) + ".nii.gz"));
  // Corrupt: not an image at all.
  { std::ofstream(in_ / "corrupt.nii.gz", std::ios::binary) << std::string(500, '\x17'); }
  // Truncated: a valid file cut in half.
  write_good(in_ / "whole.tmp.nii", 6, false);
  {
    const std::string b = bytes_of(in_ / "whole.tmp.nii");
    std::ofstream(in_ / "truncated.nii", std::ios::binary) << b.substr(0, b.size() / 2);
    fs::remove(in_ / "whole.tmp.nii");
  }
  // 4-D.
  write_itk<float, 4>((in_ / "fourd.nii.gz").string(), {8, 10, 3, 2},
                      [](auto i) { return i[0] + i[3]; });
  // Image and mask of different size, and of different geometry.
  write_good(in_ / "badsize.nii.gz");
  write_itk<unsigned char, 3>((in_ / "mask_badsize.nii.gz").string(), {8, 11, 3},
                              [](auto) { return 1; }, {0.5, 0.5, 4.0}, true);
  write_good(in_ / "badgeom.nii.gz");
  write_itk<unsigned char, 3>((in_ / "mask_badgeom.nii.gz").string(), {8, 10, 3},
                              [](auto) { return 1; }, {0.5, 0.5, 3.0}, true);
  // Mask with a value that is not a label.
  write_good(in_ / "badlabel.nii.gz");
  write_itk<unsigned char, 3>((in_ / "mask_badlabel.nii.gz").string(), {8, 10, 3},
                              [](auto i) { return i[0] == 2 ? 40 : 0; }, {0.5, 0.5, 4.0}, true);
  // Non-finite voxels; a constant (empty) volume; too many slices.
  write_itk<float, 3>((in_ / "nan.nii.gz").string(), {8, 10, 3},
                      [](auto i) { return i[0] == 1 && i[1] == 2 ? NAN : 1.0f * i[1]; });
  write_itk<short, 3>((in_ / "empty.nii.gz").string(), {8, 10, 3}, [](auto) { return 0; });
  write_good(in_ / "toolong.nii.gz", 41);

  auto r = run(in_.str(), {"read.max_slices=40"});
  EXPECT_EQ(r.ok, 3);
  EXPECT_EQ(r.failed, 9);
  auto expect_fail = [&](const std::string& id, const std::string& fragment) {
    const auto& c = outcome(r, id);
    EXPECT_EQ(c.status, "failed") << id;
    EXPECT_EQ(c.error_node, "read") << id;
    EXPECT_THAT(c.error, HasSubstr(fragment)) << id;
  };
  expect_fail("corrupt", "corrupt.nii.gz");
  expect_fail("corrupt", "not a NIfTI, NRRD or MetaImage file");
  expect_fail("truncated", "truncated.nii");
  expect_fail("fourd", "is 4-D (8x10x3x2)");
  expect_fail("badsize", "mask_badsize.nii.gz is 8x11x3, image");
  expect_fail("badgeom", "does not share the geometry");
  expect_fail("badlabel", "not a label in 0..19");
  expect_fail("nan", "3 non-finite voxels");
  expect_fail("empty", "is empty: every voxel is 0");
  expect_fail("toolong", "41 slices (file axis k, the largest spacing), over the limit max_slices=40");

  // Every good case is written, normalised, with its geometry intact.
  for (const char* id : {"good1", "good2", "good3"}) {
    const auto in = io::read_image((in_ / (std::string(id) + ".nii.gz")).string());
    const auto out = io::read_image((out_ / (std::string("norm_") + id + ".nii.gz")).string());
    EXPECT_TRUE(out.geometry.same_as(in.geometry, 1e-6)) << id;
    EXPECT_EQ(out.data->shape(), in.data->shape());
    EXPECT_FLOAT_EQ(out.data->data<float>()[5], (in.data->data<float>()[5] - 466.0f) / 379.0f);
  }
  // Nothing was written for failed cases, and no temporary files are left.
  int files = 0;
  for (const auto& e : fs::directory_iterator(out_.str())) {
    const std::string name = e.path().filename().string();
    if (name != ".spineparse.lock") {  // the run's lock stays
      EXPECT_NE(name[0], '.') << name;
    }
    files += name.rfind("norm_", 0) == 0;
  }
  EXPECT_EQ(files, 3);
}

TEST_F(ReadDatasetTest, MissingInputFolderIsARunError) {
  EXPECT_THROW(run((in_ / "nope").string()), RunError);
  EXPECT_THROW(run(in_.str()), RunError);  // exists, but holds no volumes
}

TEST(Normalise, ZscoreUsesPopulationStatistics) {
  Registry r;
  register_io_stages(r);
  Params p({{"mode", std::string("zscore")}, {"mean", 466.0}, {"std", 379.0}});
  auto stage = r.create("io.normalise", p);
  auto c = std::make_shared<Case>("c", 0);
  auto a = NdArray::make<float>({1, 1, 4});
  float vals[] = {1, 2, 3, 6};
  std::copy(vals, vals + 4, a->data<float>());
  c->set("image", a);
  auto out = stage->process(c);
  const float* y = out->get("image")->data<float>();
  const double mean = 3, sd = std::sqrt((4 + 1 + 0 + 9) / 4.0);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[i], (vals[i] - mean) / sd, 1e-6);
  EXPECT_DOUBLE_EQ(out->get("norm")->data<double>()[0], mean);
}
