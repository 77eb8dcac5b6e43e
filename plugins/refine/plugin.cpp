// Entry point of the refine plugin: anatomical graph refinement of label maps.
#include "refine_stages.hpp"
#include "spineparse/plugin_api.hpp"

SPINEPARSE_PLUGIN("refine", "0.1.0", spineparse::register_refine_stages)
