// A stage that writes a file per case into the run's output folder: a writer (a label map, a
// DICOM object) or a per-case record that after_run gathers. The derived stage says where the
// file goes (path_for) and, when only some cases get one, which (writes_file_for); the base keeps
// the run's output folder from open() and lists the file in outputs_for, so --resume skips a case
// whose file is there (and passes its check).
//
//   class WriteThing : public CaseFileStage<WriteThingOptions> {
//    public:
//     using CaseFileStage::CaseFileStage;
//     CasePtr process(const CasePtr& in) override;  // writes file_of(in->id())
//    protected:
//     std::string path_for(const std::string& id, const std::string& output_dir) const override;
//   };
#pragma once

#include <string>
#include <vector>

#include "spineparse/param_set.hpp"
#include "spineparse/stage.hpp"

namespace spineparse {

template <class Options>
class CaseFileStage : public StageWith<Options> {
 public:
  using StageWith<Options>::StageWith;
  void open(const StageContext& ctx) override { output_dir_ = ctx.output_dir; }
  std::vector<std::string> outputs_for(const CaseSeed& seed,
                                       const StageContext& ctx) const override {
    if (!writes_file_for(seed)) return {};
    return {path_for(seed.id, ctx.output_dir)};
  }

 protected:
  // The case's file under `output_dir` (the run's output folder).
  virtual std::string path_for(const std::string& id, const std::string& output_dir) const = 0;
  // Whether the case's run leaves a file that --resume should look for (default: every case).
  virtual bool writes_file_for(const CaseSeed&) const { return true; }
  // The case's file in this run (after open()).
  std::string file_of(const std::string& id) const { return path_for(id, output_dir_); }

 private:
  std::string output_dir_;
};

}  // namespace spineparse
