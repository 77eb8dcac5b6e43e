// The x86 vector registers' upper halves (bits 128 and up of YMM/ZMM 0-15). Compiled AVX code
// clears them before it returns (vzeroupper); hand-written assembly may not, and while they hold
// state every later SSE instruction on the thread runs slower: after an ISA-L inflate left them so,
// the stages that ran next on its thread took up to 40 % longer. The executor clears them after
// every stage call (call_stage); code that calls such a library outside a stage clears them itself.
#pragma once

#include <optional>

namespace spineparse {

// vzeroupper where the CPU has AVX; nothing elsewhere.
void clear_upper_vector_state();

// Whether they hold state now (XINUSE bits 2 and 6, from XGETBV with ECX = 1); nullopt where the
// CPU cannot say. For tests.
std::optional<bool> upper_vector_state_in_use();

}  // namespace spineparse
