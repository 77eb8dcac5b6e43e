// The int8 ResUNet2D's elementwise passes (quantizing its input, requantizing a decoder's skip
// sum), built for the CPU found at run time (spineparse/cpu_clones.hpp), the same bytes on each:
// rounding to nearest, ties to even, saturation to [-127, 127].
#pragma once
#include <cstdint>

namespace spineparse::nn::int8_rows {

// For each of `pixels` pixels of `c` channels (x and d channels-last, contiguous):
// d[p c + k] = saturate(round(x[p c + k] * inv[k])).
void quantize_pixels(const float* x, const float* inv, int8_t* d, int64_t pixels, int64_t c);

// One output row of a decoder's skip sum: for each of `w` pixels of `c` channels,
// d[x c + k] = saturate(round(s[x c + k] * a + z[(x / 2) zc + (x % 2) c + k] * b)), where z points
// at the row's phase-(py, 0) channels of the upsampling (zc channels per pixel).
void skip_sum_row(const uint8_t* s, const int8_t* z, int8_t* d, int64_t w, int64_t c, int64_t zc,
                  float a, float b);

// One output row of a 2x2 max pooling at stride 2 (uint8, channels-last): for each of `w` output
// pixels of `c` channels, d[j c + k] = the largest of r0 and r1 (two input rows) at pixels 2j and
// 2j + 1, channel k.
void max_pool_row(const uint8_t* r0, const uint8_t* r1, uint8_t* d, int64_t w, int64_t c);

}  // namespace spineparse::nn::int8_rows
