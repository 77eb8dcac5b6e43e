#!/usr/bin/env bash
# check_sdk.sh BUILD_DIR SOURCE_DIR: installs the build, builds plugins outside the tree against
# the installed package and runs graphs with them. Fails with the step that broke.
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d /tmp/spineparse-sdk.XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
step() { echo "== $*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

step "cmake --install into $prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" || { cat "$work/install.log"; fail install; }
runtime=$( (ls "$prefix"/lib*/libspineparse_runtime.so.* "$prefix"/lib/*/libspineparse_runtime.so.* 2>/dev/null || true) | head -n1)
[ -n "$runtime" ] || fail "no libspineparse_runtime.so installed"
for f in bin/spineparse include/spineparse/plugin_api.hpp include/spineparse/build_info.hpp \
         share/spineparse/graphs/demo.json share/spineparse/models/demo_gcsn.safetensors; do
  [ -e "$prefix/$f" ] || fail "$f not installed"
done
ls "$prefix"/lib*/cmake/spineparse/spineparseConfig.cmake >/dev/null || fail "no CMake package"

step "ldd $(basename "$runtime"): neither LibTorch nor ITK"
# Library names only: a load address such as 0x...ec1000 would match "c10".
if ldd "$runtime" | awk '{print $1}' | grep -E '^lib(torch|c10)|^libITK'; then
  fail "the runtime library links LibTorch or ITK"
fi

step "build the example plugin against the installed package"
cmake -S "$src/examples/label_volumes" -B "$work/example" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
  >"$work/example.log" 2>&1 || { cat "$work/example.log"; fail "configure the example"; }
cmake --build "$work/example" >>"$work/example.log" 2>&1 || { cat "$work/example.log"; fail "build the example"; }

step "a plugin written here (not the example), built with ${CXX_OTHER:=$(command -v clang++ || echo c++)}"
mkdir -p "$work/mine"
cat >"$work/mine/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(mine LANGUAGES CXX)
set(CMAKE_CXX_STANDARD 17)
find_package(spineparse CONFIG REQUIRED)
spineparse_add_plugin(NAME mine ENTRY mine.cpp OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/plugins)
CM
cat >"$work/mine/mine.cpp" <<'CPP'
#include <memory>
#include "spineparse/plugin_api.hpp"
#include "spineparse/registry.hpp"
namespace {
using namespace spineparse;
// mine.scale: image * factor, in place of the image.
class Scale : public Stage {
 public:
  explicit Scale(const Params& p) : factor_(static_cast<float>(p.get_float("factor"))) {}
  CasePtr process(const CasePtr& in) override {
    auto image = std::make_shared<NdArray>(*in->get("image"));
    for (std::int64_t i = 0; i < image->numel(); ++i) image->data<float>()[i] *= factor_;
    auto out = in->derive();
    out->set("image", image);
    out->set_metric("scaled_by", factor_);
    return out;
  }
 private:
  float factor_;
};
void register_mine(Registry& r) {
  StageDescription d;
  d.kind = "mine.scale";
  d.summary = "multiplies the image";
  d.params = {{"factor", ParamType::kFloat, ParamValue(2.0), false, "the factor"}};
  d.reads = {{"image", false, "", "float32", "D,H,W"}};
  d.writes = {{"image", false, "", "float32", "D,H,W"}};
  r.add_stage(d, [](const Params& p) { return std::make_unique<Scale>(p); });
}
}  // namespace
SPINEPARSE_PLUGIN("mine", "0.1", register_mine)
CPP
CXX="$CXX_OTHER" cmake -S "$work/mine" -B "$work/mine/build" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
  >"$work/mine.log" 2>&1 || { cat "$work/mine.log"; fail "configure my plugin"; }
cmake --build "$work/mine/build" >>"$work/mine.log" 2>&1 || { cat "$work/mine.log"; fail "build my plugin"; }

export SPINEPARSE_PLUGIN_PATH="$work/example:$work/mine/build/plugins"
sp="$prefix/bin/spineparse"
step "spineparse stages example (installed binary, plugins from SPINEPARSE_PLUGIN_PATH)"
"$sp" stages example.label_volumes | tee "$work/stages.txt"
grep -q "example.label_volumes" "$work/stages.txt" || fail "the example's stage is not listed"
"$sp" stages mine.scale | grep -q "float32 \[D,H,W\]" || fail "mine.scale's field types are not shown"

step "run a graph with both plugins on a synthetic cohort"
"$sp" synth --cases 2 --seed 5 --size 64 96 --slices 6 8 --out "$work/cohort" >/dev/null
cat >"$work/graph.json" <<'JSON'
{"schema_version": 1,
 "nodes": [
   {"id": "read", "stage": "io.read_dataset"},
   {"id": "scale", "stage": "mine.scale", "params": {"factor": 3}},
   {"id": "volumes", "stage": "example.label_volumes", "params": {"field": "mask"}}]}
JSON
"$sp" run "$work/graph.json" --input "$work/cohort" --output "$work/out" --progress none
run_json="$work/out/run.json"
grep -q '"ok": 2,' "$run_json" && grep -q '"failed": 0,' "$run_json" || { cat "$run_json"; fail "the graph's cases did not all succeed"; }
for name in '"example"' '"mine"' '"io"'; do grep -q "\"name\": $name" "$run_json" || fail "plugin $name not in run.json"; done
[ "$(grep -c '"scaled_by": 3' "$run_json")" = 2 ] || fail "mine.scale's metric missing"
[ "$(grep -c '"labelled_ml": [1-9]' "$run_json")" = 2 ] || fail "example.label_volumes' metric missing"
echo "run.json: 2 cases ok, metrics from both out-of-tree plugins"

step "the installed demo graph resolves its models and runs with the installed plugins"
unset SPINEPARSE_PLUGIN_PATH
"$sp" validate "$prefix/share/spineparse/graphs/demo.json"
"$sp" run "$prefix/share/spineparse/graphs/demo.json" --input "$work/cohort" --output "$work/demo" \
  --progress none --set read.cases=Case1
grep -q '"ok": 1,' "$work/demo/run.json" || { cat "$work/demo/run.json"; fail "the installed demo graph"; }

step "pkg-config"
PKG_CONFIG_PATH=$(dirname "$( (ls "$prefix"/lib*/pkgconfig/spineparse.pc "$prefix"/lib/*/pkgconfig/spineparse.pc 2>/dev/null || true) | head -n1)") \
  pkg-config --cflags --libs spineparse | grep -q -- "-lspineparse_runtime" || fail "pkg-config spineparse"
echo "SDK check passed"
