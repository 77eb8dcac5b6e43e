// The int8 calibration a ResUNet2D weights file records (safetensors metadata, key
// "int8_calibration", JSON): the activation ranges precision=int8 quantizes with, how many cases
// they were recorded on, and how far the int8 labels agreed with float32's. Written by
// `spineparse calibrate`, read by fine.resunet. Light header (no LibTorch).
#pragma once

#include <limits>
#include <map>
#include <string>
#include <vector>

namespace spineparse::nn {

inline constexpr const char* kInt8CalibrationKey = "int8_calibration";

struct Int8Calibration {
  std::vector<float> ranges;  // largest |value| per activation point (int8_activation_points())
  int cases = 0;              // cases whose every slice the ranges were recorded on
  // Share of voxels whose labels (the whole pipeline's) equal those of the float32 run, over
  // `checked_cases` cases of `checked_on`; NaN: not measured.
  double agreement = std::numeric_limits<double>::quiet_NaN();
  int checked_cases = 0;
  std::string checked_on;

  std::string to_json() const;
  // Throws std::runtime_error naming `file` when the text is not such a record.
  static Int8Calibration from_json(const std::string& text, const std::string& file);
  // The record in a weights file's metadata; throws naming the file and `spineparse calibrate`
  // when there is none.
  static Int8Calibration of_weights(const std::map<std::string, std::string>& metadata,
                                    const std::string& file);
};

}  // namespace spineparse::nn
