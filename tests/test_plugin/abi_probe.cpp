// A plugin with no stages, compiled with other C++ ABIs or library versions to test the
// handshake: it references nothing of the runtime, so it loads whatever its ABI and the
// descriptor alone decides.
#include "spineparse/plugin_api.hpp"

namespace {
void register_nothing(spineparse::Registry&) {}
}  // namespace

SPINEPARSE_PLUGIN(TEST_PLUGIN_NAME, "0.0.1", register_nothing)
