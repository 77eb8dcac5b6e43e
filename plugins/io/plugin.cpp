// Entry point of the io plugin: reading datasets, normalisation, writing volumes.
#include "io_stages.hpp"
#include "spineparse/plugin_api.hpp"

SPINEPARSE_PLUGIN("io", "0.1.0", spineparse::register_io_stages)
