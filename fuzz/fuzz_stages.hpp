// Stage kinds for the graph fuzz targets: in-process, no I/O, with parameters of every type and
// field declarations that chain (source -> filter -> sink), so validation runs deep.
#pragma once

#include <memory>

#include "spineparse/registry.hpp"

namespace spineparse::fuzz {

class NoOp : public Stage {
 public:
  CasePtr process(const CasePtr& in) override { return in; }
  std::vector<CaseSeed> enumerate(const StageContext&) override { return {}; }
};

inline void register_fuzz_stages(Registry& r) {
  StageDescription src;
  src.kind = "fz.source";
  src.is_source = true;
  src.params = {
      {"dir", ParamType::kPath, ParamValue(std::string()), false, "folder"},
      {"layout",
       ParamType::kString,
       ParamValue(std::string("auto")),
       false,
       "layout",
       {"auto", "flat"}},
      {"cases", ParamType::kStringList, ParamValue(std::vector<std::string>{}), false, "ids"},
      {"max_voxels",
       ParamType::kInt,
       ParamValue(std::int64_t{64}),
       false,
       "limit",
       {},
       1.0,
       std::nullopt},
      {"flag", ParamType::kBool, ParamValue(true), false, "a flag"}};
  src.writes = {{"image", false, "volume", "float32", "D,H,W"},
                {"mask", true, "labels", "uint8", "D,H,W"}};
  StageDescription mid;
  mid.kind = "fz.filter";
  mid.params = {{"scale", ParamType::kFloat, ParamValue(1.0), false, "factor", {}, 0.0, 10.0},
                {"name", ParamType::kString, ParamValue(std::string("x_{id}.nii")), false, "name"}};
  mid.reads = {{"image", false, "", "float32", "D,H,W"}};
  mid.writes = {{"labels", false, "", "uint8", "D,H,W"}};
  mid.consumes = {"image"};
  StageDescription sink;
  sink.kind = "fz.sink";
  sink.params = {{"field", ParamType::kString, ParamValue(std::string()), true, "field"}};
  sink.reads = {{"labels", false, "", "uint8", "D,H,W"}, {"mask", true, "", "uint8", "D,H,W"}};
  sink.concurrency = Concurrency::kSerial;
  for (auto* d : {&src, &mid, &sink})
    r.add_stage(*d, [](const Params&) { return std::make_unique<NoOp>(); });
}

}  // namespace spineparse::fuzz
