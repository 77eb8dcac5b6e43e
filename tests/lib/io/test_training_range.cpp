// The training range a model records and the check of a case against it; slice-axis resampling.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>

#include "io/slice_axis.hpp"
#include "io/synth.hpp"
#include "io/training_range.hpp"
#include "io/volume_io.hpp"
#include "io/weights_metadata.hpp"
#include "spineparse/files.hpp"
#include "test_util.hpp"

namespace io = spineparse::io;
using spineparse::Geometry;
using spineparse::NdArray;
using ::testing::HasSubstr;

TEST(TrainingRange, PropertiesAreMeasuredOnTheModelsGrid) {
  Geometry g;
  g.spacing = {0.5, 0.6, 4.0};
  const auto p = io::volume_properties(g, {800, 600, 13});  // i = H, j = W, k = D
  EXPECT_DOUBLE_EQ(p.at("slice_spacing_mm"), 4.0);
  EXPECT_DOUBLE_EQ(p.at("inplane_spacing_mm"), 0.6);
  EXPECT_DOUBLE_EQ(p.at("slices"), 13);
  EXPECT_DOUBLE_EQ(p.at("fov_h_mm"), 400);
  EXPECT_DOUBLE_EQ(p.at("fov_w_mm"), 360);
}

TEST(TrainingRange, MedianAndPercentilesAsNumpy) {
  std::vector<io::VolumeProperties> cases;
  for (int k = 1; k <= 21; ++k) cases.push_back({{"slices", static_cast<double>(k)}});
  const auto r = io::training_range_of(cases, "test");
  EXPECT_EQ(r.cases, 21);
  EXPECT_DOUBLE_EQ(r.properties.at("slices").median, 11);
  EXPECT_DOUBLE_EQ(r.properties.at("slices").p5, 2);  // numpy.percentile(range(1, 22), 5)
  EXPECT_DOUBLE_EQ(r.properties.at("slices").p95, 20);
  const auto two = io::training_range_of({{{"slices", 10}}, {{"slices", 20}}}, "two");
  EXPECT_DOUBLE_EQ(two.properties.at("slices").p5, 10.5);
  EXPECT_THROW(io::training_range_of({}, "none"), std::runtime_error);
}

TEST(TrainingRange, RoundTripsAsJsonAndRefusesWhatIsNotARange) {
  const auto r = io::original_data_range();
  const auto back = io::TrainingRange::from_json(r.to_json(), "w.safetensors");
  EXPECT_EQ(back.source, r.source);
  ASSERT_EQ(back.properties.size(), r.properties.size());
  EXPECT_DOUBLE_EQ(back.properties.at("slice_spacing_mm").p95, 4.8);
  for (const char* bad : {"not json", "{}", R"({"properties": {"slices": {"median": 1}}})",
                          R"({"properties": {"slices": {"median": 1, "p5": 2, "p95": 3}}})"}) {
    try {
      io::TrainingRange::from_json(bad, "w.safetensors");
      ADD_FAILURE() << bad;
    } catch (const std::runtime_error& e) {
      EXPECT_THAT(e.what(), HasSubstr("w.safetensors: training_range")) << bad;
    }
  }
}

TEST(TrainingRange, FlagsWhatLiesOutsideTheWidenedRange) {
  io::TrainingRange r;
  r.cases = 80;
  r.properties = {{"slice_spacing_mm", {4.0, 3.6, 4.5}}, {"slices", {13, 12, 15}}};
  EXPECT_TRUE(io::check_range(r, {{"slice_spacing_mm", 4.0}, {"slices", 13}}, 0.25).empty());
  EXPECT_TRUE(io::check_range(r, {{"slice_spacing_mm", 3.0}, {"slices", 18}}, 0.25).empty());
  const auto f = io::check_range(r, {{"slice_spacing_mm", 1.0}, {"slices", 52}}, 0.25);
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].property, "slice_spacing_mm");
  EXPECT_EQ(f[0].value, 1.0);
  EXPECT_THAT(f[0].message, HasSubstr("slice_spacing_mm 1 is outside the model's training "
                                      "range (3.6 to 4.5, median 4, over 80 cases)"));
  EXPECT_THAT(f[1].message, HasSubstr("slices 52"));
  EXPECT_EQ(io::check_range(r, {{"slices", 16}}, 0.0).size(), 1u);
}

// A safetensors file by hand: one float32 tensor of 3 values.
static std::string tiny_safetensors() {
  const std::string header =
      R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},"__metadata__":{"model":"x"}})";
  std::string out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((header.size() >> (8 * i)) & 0xff));
  out += header;
  const float v[3] = {1.5f, -2.0f, 3.25f};
  out.append(reinterpret_cast<const char*>(v), sizeof v);
  return out;
}

TEST(TrainingRange, IsRecordedInTheWeightsWithTheTensorsUnchanged) {
  spineparse::testing::TempDir d;
  const std::string path = (d / "w.safetensors").string();
  spineparse::write_file_atomic(path, tiny_safetensors());
  io::set_safetensors_metadata(path, {{io::kTrainingRangeKey, io::original_data_range().to_json()},
                                      {"orientation", "PIL"}});
  const auto meta = io::safetensors_metadata(path);
  EXPECT_EQ(meta.at("model"), "x");
  EXPECT_EQ(meta.at("orientation"), "PIL");
  EXPECT_EQ(io::TrainingRange::from_json(meta.at(io::kTrainingRangeKey), path).properties.size(),
            5u);
  const std::string bytes = spineparse::read_file(path);
  std::uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(len % 8, 0u);
  ASSERT_EQ(bytes.size(), 8 + len + 12);
  float v[3];
  std::memcpy(v, bytes.data() + 8 + len, sizeof v);
  EXPECT_EQ(v[0], 1.5f);
  EXPECT_EQ(v[2], 3.25f);
  spineparse::write_file_atomic(path, "not a weights file at all");
  EXPECT_THROW(io::set_safetensors_metadata(path, {{"a", "b"}}), std::runtime_error);
}

// Slice k of a [2, D, 1, 2] array holds c * 100 + k in both voxels.
static spineparse::NdArrayPtr ramp(std::int64_t D) {
  auto a = NdArray::make<float>({2, D, 1, 2});
  for (std::int64_t c = 0; c < 2; ++c)
    for (std::int64_t k = 0; k < D; ++k)
      for (int i = 0; i < 2; ++i) a->data<float>()[(c * D + k) * 2 + i] = 100.0f * c + k;
  return a;
}

TEST(SliceAxis, ThinSlicesAverageIntoThickOnesOverTheSameSlab) {
  const auto p = io::plan_slices(40, 1.0, 4.1);
  EXPECT_EQ(p.to, 10);
  EXPECT_DOUBLE_EQ(p.to_spacing, 4.0);
  const auto out = io::resample_slices(*ramp(40), p);
  ASSERT_EQ(out->shape(), (std::vector<std::int64_t>{2, 10, 1, 2}));
  for (std::int64_t k = 0; k < 10; ++k) {
    EXPECT_NEAR(out->data<float>()[k * 2], 4 * k + 1.5, 1e-4) << k;  // mean of 4k .. 4k+3
    EXPECT_NEAR(out->data<float>()[(10 + k) * 2 + 1], 100 + 4 * k + 1.5, 1e-4) << k;
  }
  // Labels: the thin slice under each thick slice's centre.
  auto labels = NdArray::make<std::uint8_t>({40, 1, 1});
  for (int k = 0; k < 40; ++k) labels->data<std::uint8_t>()[k] = static_cast<std::uint8_t>(k);
  const auto l = io::resample_label_slices(*labels, p);
  for (int k = 0; k < 10; ++k) EXPECT_EQ(l->data<std::uint8_t>()[k], 4 * k + 2) << k;
  // And back: every thin slice takes the thick slice covering its centre.
  const auto back = io::resample_label_slices(*l, io::inverse(p));
  for (int k = 0; k < 40; ++k) EXPECT_EQ(back->data<std::uint8_t>()[k], 4 * (k / 4) + 2) << k;
}

TEST(SliceAxis, MoreSlicesInterpolateLinearlyBetweenCentres) {
  const auto p = io::plan_slices(3, 4.0, 2.0);
  EXPECT_EQ(p.to, 6);
  const auto out = io::resample_slices(*ramp(3), p);
  // New centres at 1, 3, 5, ... mm; old at 2, 6, 10 mm: source positions -0.25 (clamped), 0.25, ...
  const float want[6] = {0.0f, 0.25f, 0.75f, 1.25f, 1.75f, 2.0f};
  for (int k = 0; k < 6; ++k) EXPECT_NEAR(out->data<float>()[k * 2], want[k], 1e-5) << k;
  EXPECT_THROW(io::resample_slices(*ramp(4), p), std::runtime_error);  // not 3 slices
}

TEST(SliceAxis, TheResampledGridCoversTheSameSlabInSpace) {
  Geometry g;
  g.spacing = {0.5, 0.5, 1.0};
  g.origin = {10, 20, 30};
  g.direction = {0, 0, 1, 1, 0, 0, 0, -1, 0};  // axis k along x
  const auto p = io::plan_slices(40, 1.0, 4.0);
  const Geometry r = io::resample_geometry(g, p);
  EXPECT_DOUBLE_EQ(r.spacing[2], 4.0);
  // The slab's first face (half a slice before slice 0's centre) is where it was.
  EXPECT_DOUBLE_EQ(r.origin[0] - 0.5 * r.spacing[2], g.origin[0] - 0.5 * g.spacing[2]);
  EXPECT_DOUBLE_EQ(r.origin[1], 20);
  EXPECT_DOUBLE_EQ(r.origin[2], 30);
}

// A thin-slice phantom shows the same anatomy as the drawn one: its slices, averaged back to the
// drawn spacing, give nearly the same labels.
TEST(SliceAxis, ASyntheticThinSliceScanIsTheSameSpine) {
  io::SynthOptions o;
  o.min_size = o.max_size = 96;
  const auto thick = io::make_phantom(o, 3);
  o.slice_spacing = 1.0;
  const auto thin = io::make_phantom(o, 3);
  const double slab = thick.geometry.spacing[2] * static_cast<double>(thick.image->dim(0));
  EXPECT_NEAR(static_cast<double>(thin.image->dim(0)), slab, 1.0);
  const auto p = io::plan_slices(thin.image->dim(0), 1.0, thick.geometry.spacing[2]);
  ASSERT_EQ(p.to, thick.image->dim(0));
  const auto back = io::resample_label_slices(*thin.mask, p);
  std::int64_t same = 0, labelled = 0;
  for (std::int64_t i = 0; i < back->numel(); ++i) {
    const auto a = back->data<std::uint8_t>()[i], b = thick.mask->data<std::uint8_t>()[i];
    labelled += a || b;
    same += a && a == b;
  }
  EXPECT_GT(static_cast<double>(same) / static_cast<double>(labelled), 0.8);
}
