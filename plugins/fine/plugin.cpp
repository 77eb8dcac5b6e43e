// Entry point of the fine plugin: crop/resample, ResUNet2D inference, mapping to the raw grid.
#include "fine_stages.hpp"
#include "spineparse/plugin_api.hpp"

SPINEPARSE_PLUGIN("fine", "0.1.0", spineparse::register_fine_stages)
