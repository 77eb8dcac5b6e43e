// SPINEPARSE_CPU_CLONES before a function definition builds it three times, for AVX-512
// (x86-64-v4), AVX2 with FMA (x86-64-v3) and baseline x86-64, and calls the one the CPU supports
// (chosen once, when the library loads). For hot loops over plain arrays: the compiler vectorises
// each build for its CPU. Every build computes the same operations in the same order (the project
// builds with -ffp-contract=off, so no build fuses a multiply and an add), hence the same results;
// a plugin built outside the tree that uses it needs that flag too for the same guarantee.
// Elsewhere (other compilers or CPUs) it is empty: one build for the target.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SPINEPARSE_CPU_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SPINEPARSE_CPU_CLONES
#endif
