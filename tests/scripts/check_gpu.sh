#!/usr/bin/env bash
# scripts/check-gpu's parts that need no GPU: its arguments, a machine without a GPU (nvidia-smi
# stubbed to list none, so the result is the same on a GPU machine), the summary's verdicts, and
# two checks run for real on the CPU build, which must fail them with the reason. Prints
# 'N passed, M failed'; exits 1 on a failure.
set -uo pipefail
SCRIPT="$(cd "$(dirname "$0")/../.." && pwd)/scripts/check-gpu"
BUILD=${SPINEPARSE_BUILD_DIR:?set SPINEPARSE_BUILD_DIR to the build folder}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAILED: $*"; }
# expect NAME STATUS WANTED_TEXT CMD...: CMD exits STATUS and prints WANTED_TEXT.
expect() {
  local name=$1 status=$2 text=$3 out rc
  shift 3
  out=$("$@" 2>&1)
  rc=$?
  if [ "$rc" -eq "$status" ] && [[ $out == *"$text"* ]]; then ok; else
    bad "$name: exit $rc (wanted $status), output: ${out:0:400}"; fi
}

expect help 0 "Exit status" "$SCRIPT" --help
expect list 0 "oom_fails_alone" "$SCRIPT" --list
expect unknown-argument 2 "unknown argument '--bogus'" "$SCRIPT" --bogus
expect unknown-check 2 "unknown check 'nope' (checks: gpu_visible" "$SCRIPT" --only nope
expect no-build 2 "no build in $tmp/none" "$SCRIPT" --build "$tmp/none"

# No GPU: every check skipped with the reason, one table, exit 3.
mkdir -p "$tmp/bin"
printf '#!/bin/sh\nexit 9\n' >"$tmp/bin/nvidia-smi"
chmod +x "$tmp/bin/nvidia-smi"
out=$(PATH="$tmp/bin:$PATH" "$SCRIPT" --build "$BUILD" --out "$tmp/nogpu" 2>&1)
rc=$?
skipped=$(grep -c 'SKIP .*no GPU: nvidia-smi lists none' <<<"$out")
if [ $rc -eq 3 ] && [ "$skipped" -ge 9 ] && [[ $out == *"0 passed, 0 failed, 9 skipped"* ]]; then ok; else
  bad "no GPU: exit $rc, $skipped skipped lines: ${out:0:600}"; fi
[ "$(wc -l <"$tmp/nogpu/results.tsv")" -eq 9 ] && ok || bad "results.tsv has not 9 rows"
out=$(PATH="$tmp/bin:$PATH" "$SCRIPT" --build "$BUILD" --out "$tmp/one" --only bench 2>&1)
[[ $out == *"0 passed, 0 failed, 1 skipped"* ]] && ok || bad "--only bench: ${out:0:300}"

# The summary's verdicts, from results written here.
verdict() {  # verdict ROWS...: the exit status summary gives for those rows
  (
    CHECK_GPU_SOURCE_ONLY=1
    source "$SCRIPT"
    OUT=$tmp/summary
    mkdir -p "$OUT"
    printf '%s\n' "$@" | tr '|' '\t' >"$OUT/results.tsv"
    summary >/dev/null
  )
}
verdict "a|PASS|1|x" "b|SKIP|0|y"; [ $? -eq 0 ] && ok || bad "pass and skip should exit 0"
verdict "a|PASS|1|x" "b|FAIL|2|y"; [ $? -eq 1 ] && ok || bad "a failure should exit 1"
verdict "a|SKIP|0|x" "b|SKIP|0|y"; [ $? -eq 3 ] && ok || bad "nothing checked should exit 3"

# With a GPU listed, a check that prints no verdict counts as failed, and fails the run.
mkdir -p "$tmp/gpubin"
printf '#!/bin/sh\necho "GPU 0: Fake GPU (UUID: GPU-0)"\n' >"$tmp/gpubin/nvidia-smi"
chmod +x "$tmp/gpubin/nvidia-smi"
out=$(
  CHECK_GPU_SOURCE_ONLY=1
  source "$SCRIPT"
  check_gpu_visible() { echo "something went wrong"; }
  PATH="$tmp/gpubin:$PATH" main --build "$BUILD" --out "$tmp/noverdict" --only gpu_visible
)
rc=$?
[ $rc -eq 1 ] && [[ $out == *"FAIL   "*"the check gave no verdict"* ]] && ok ||
  bad "no verdict: exit $rc: ${out:0:300}"

# Two checks run for real on this (CPU) build: auto must be found on the CPU and said so, and
# --device cuda refused.
r=$(
  CHECK_GPU_SOURCE_ONLY=1
  source "$SCRIPT"
  BUILD=$BUILD OUT=$tmp/real
  mkdir -p "$OUT"
  check_auto_uses_gpu
  check_cuda_is_cuda0
)
[[ $r == *"FAIL|auto ran coarse on cpu, fine on cpu: this build's LibTorch sees no CUDA"* ]] && ok ||
  bad "auto_uses_gpu on the CPU: $r"
[[ $r == *"FAIL|--device cuda failed"* ]] && ok || bad "cuda_is_cuda0 on the CPU: $r"
grep -q "no CUDA or no GPU is visible" "$tmp/real/cuda_is_cuda0.log" && ok ||
  bad "the refusal's reason is not in cuda_is_cuda0.log"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
