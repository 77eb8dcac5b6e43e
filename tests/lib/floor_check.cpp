// Empty on purpose: lib_floor_check (tests/lib/CMakeLists.txt) links every object of the library
// parts whole, so the linker, not this file, checks that lib/ needs nothing above the core.
