// io.reorient against the model's training range: warnings for scans outside it, the slice axis
// resampled to the model's spacing (resample off/auto/always), and io.restore_orientation putting
// everything back on the input's grid.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "grid_history.hpp"
#include "io/synth.hpp"
#include "io/training_range.hpp"
#include "io/weights_metadata.hpp"
#include "io_stages.hpp"
#include "spineparse/files.hpp"
#include "spineparse/registry.hpp"
#include "spineparse/stage_harness.hpp"
#include "test_util.hpp"

namespace io = spineparse::io;
using spineparse::CasePtr;
using spineparse::NdArray;
using spineparse::Registry;
using spineparse::StageHarness;
using ::testing::HasSubstr;
using ::testing::Not;

namespace {

// A weights file with no tensors whose metadata records orientation PIL and a 3.6-4.6 mm range.
std::string weights_file(const spineparse::testing::TempDir& d, bool with_range = true) {
  io::TrainingRange r;
  r.cases = 50;
  r.source = "test";
  r.properties = {{"slice_spacing_mm", {4.0, 3.6, 4.6}}, {"slices", {13, 12, 15}}};
  std::string meta = R"({"__metadata__":{"orientation":"PIL")";
  if (with_range) {
    std::string json;
    for (char ch : r.to_json()) json += ch == '"' ? std::string("\\\"") : std::string(1, ch);
    meta += R"(,"training_range":")" + json + "\"";
  }
  meta += "}}";
  std::string bytes;
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>((meta.size() >> (8 * i)) & 0xff));
  const std::string path = (d / (with_range ? "w.safetensors" : "w_norange.safetensors")).string();
  spineparse::write_file_atomic(path, bytes + meta);
  return path;
}

// What io.reorient recorded for io.restore_orientation.
std::shared_ptr<const spineparse::plugins::io::GridHistory> history_of(const CasePtr& c) {
  return std::dynamic_pointer_cast<const spineparse::plugins::io::GridHistory>(
      c->payload(spineparse::plugins::io::kGridHistoryValue));
}

CasePtr phantom_case(double slice_spacing) {
  io::SynthOptions o;
  o.min_size = o.max_size = 64;
  o.slice_spacing = slice_spacing;
  auto ph = io::make_phantom(o, 2);
  auto img = NdArray::make<float>(ph.image->shape());
  for (std::int64_t i = 0; i < img->numel(); ++i)
    img->data<float>()[i] = ph.image->data<std::int16_t>()[i];
  return StageHarness::make_case(ph.id, {{"image", img}, {"mask", ph.mask}}, ph.geometry);
}

// What the networks would write: labels on the grid they saw (here: the mask they were given).
CasePtr with_labels(const CasePtr& c) {
  auto out = c->derive();
  out->set("labels", c->get("mask"));
  return out;
}

class ReorientRange : public ::testing::Test {
 protected:
  void SetUp() override { spineparse::register_io_stages(registry_); }
  Registry registry_;
  spineparse::testing::TempDir dir_;
};

}  // namespace

TEST_F(ReorientRange, AThinSliceScanIsResampledToTheModelsSpacingAndRestored) {
  const std::string w = weights_file(dir_);
  StageHarness reorient(registry_, "io.reorient", {"weights=" + w});  // resample=auto
  StageHarness restore(registry_, "io.restore_orientation");
  const auto in = phantom_case(1.0);
  const std::int64_t D = in->get("image")->dim(0);
  ASSERT_GT(D, 40);
  const auto seen = reorient.process(in);
  ASSERT_FALSE(seen->failed()) << seen->error()->message;
  const std::int64_t Dm = seen->get("image")->dim(0);
  EXPECT_NEAR(static_cast<double>(Dm), D / 4.0, 1.0);
  EXPECT_NEAR(seen->geometry().spacing[2], 4.0, 0.2);
  EXPECT_EQ(seen->get("mask")->dim(0), Dm);
  EXPECT_THAT(seen->attr("warnings"), HasSubstr("slice_spacing_mm 1 is outside the model's "
                                                "training range (3.6 to 4.6"));
  EXPECT_THAT(seen->attr("warnings"), HasSubstr("slice axis resampled (resample=auto)"));
  EXPECT_THAT(seen->attr("warnings"), Not(HasSubstr("\nslices ")));  // in range once resampled
  EXPECT_THAT(seen->attr("resample_action"), HasSubstr(std::to_string(D) + " slices 1.00 mm"));
  const auto history = history_of(seen);
  ASSERT_TRUE(history && history->resampled);
  EXPECT_EQ(history->resampled->plan.from, D);
  EXPECT_EQ(history->resampled->mask_before, in->get("mask"));
  EXPECT_FALSE(history->reoriented);  // stored as the model's (PIL)

  const auto back = restore.process(with_labels(seen));
  ASSERT_FALSE(back->failed()) << back->error()->message;
  EXPECT_TRUE(back->geometry().same_as(in->geometry(), 1e-9));
  EXPECT_EQ(back->get("labels")->shape(), in->get("mask")->shape());
  EXPECT_EQ(back->get("image")->shape(), in->get("image")->shape());
  EXPECT_EQ(back->get("mask"), in->get("mask"));  // the input's own mask, untouched
  EXPECT_FALSE(back->has_payload(spineparse::plugins::io::kGridHistoryValue));  // used up
  // Labels that went through the thick grid agree with the thin mask on most labelled voxels.
  std::int64_t same = 0, labelled = 0;
  const auto* a = back->get("labels")->data<std::uint8_t>();
  const auto* b = in->get("mask")->data<std::uint8_t>();
  for (std::int64_t i = 0; i < in->get("mask")->numel(); ++i) {
    labelled += a[i] || b[i];
    same += a[i] && a[i] == b[i];
  }
  EXPECT_GT(static_cast<double>(same) / static_cast<double>(labelled), 0.75);
}

TEST_F(ReorientRange, OffWarnsButLeavesTheSlicesAlone) {
  StageHarness reorient(registry_, "io.reorient", {"weights=" + weights_file(dir_), "resample=off"});
  const auto in = phantom_case(1.0);
  const auto seen = reorient.process(in);
  EXPECT_EQ(seen->get("image"), in->get("image"));
  EXPECT_THAT(seen->attr("warnings"), HasSubstr("slice_spacing_mm 1 is outside"));
  EXPECT_THAT(seen->attr("warnings"), HasSubstr("resample=off"));
  EXPECT_THAT(seen->attr("warnings"), HasSubstr("\nslices "));
  ASSERT_TRUE(history_of(seen));
  EXPECT_FALSE(history_of(seen)->resampled);
}

TEST_F(ReorientRange, ACaseInsideTheRangeIsNeitherFlaggedNorResampled) {
  StageHarness reorient(registry_, "io.reorient", {"weights=" + weights_file(dir_)});
  const auto in = phantom_case(0);  // drawn: 3.6-4.6 mm, 12-15 slices
  const auto seen = reorient.process(in);
  EXPECT_EQ(seen->get("image"), in->get("image"));
  EXPECT_EQ(seen->attr("warnings"), "");
  EXPECT_EQ(seen->attr("resample_action"), "");
}

TEST_F(ReorientRange, AlwaysResamplesInRangeScansToo) {
  StageHarness reorient(registry_, "io.reorient",
                        {"weights=" + weights_file(dir_), "resample=always"});
  const auto in = phantom_case(0);
  const auto seen = reorient.process(in);
  if (std::abs(in->geometry().spacing[2] - 4.0) * in->get("image")->dim(0) < 2.0)
    GTEST_SKIP() << "this phantom's slab is already a whole number of 4 mm slices";
  EXPECT_EQ(seen->attr("warnings"), "");
  EXPECT_THAT(seen->attr("resample_action"), HasSubstr("resample=always"));
  EXPECT_NEAR(seen->geometry().spacing[2], 4.0, 0.4);
}

TEST_F(ReorientRange, AlwaysNeedsAModelThatRecordsItsRange) {
  try {
    StageHarness h(registry_, "io.reorient",
                   {"weights=" + weights_file(dir_, false), "resample=always"});
    ADD_FAILURE() << "opened";
  } catch (const std::exception& e) {
    EXPECT_THAT(e.what(), HasSubstr("records no training_range"));
  }
  EXPECT_THROW(StageHarness(registry_, "io.reorient", {"resample=sometimes"}),
               std::invalid_argument);
}
