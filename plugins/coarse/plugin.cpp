// Entry point of the coarse plugin: GCSN preprocessing and inference.
#include "coarse_stages.hpp"
#include "spineparse/plugin_api.hpp"

SPINEPARSE_PLUGIN("coarse", "0.1.0", spineparse::register_coarse_stages)
