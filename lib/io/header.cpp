#include "io/header.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "io/nifti_types.hpp"

namespace spineparse::io {

std::int64_t checked_mul(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) return -1;
  return r;
}

namespace {

[[noreturn]] void refuse(const std::string& name, const std::string& why) {
  throw std::runtime_error(name + ": " + why);
}

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

int datatype_bytes(int datatype) {
  int bytes = 0;
  visit_nifti_type(datatype,
                   [&](auto t) { bytes = static_cast<int>(sizeof(typename decltype(t)::type)); });
  return bytes;
}

namespace {

// The raw fields both NIfTI versions share, widened to 64 bits and doubles.
struct NiftiFields {
  int version = 1;
  bool pair = false;  // "ni1"/"ni2": the data is in a separate .img file
  std::int64_t dim[8] = {};
  int datatype = 0, bitpix = 0;
  double pixdim[8] = {};
  double vox_offset = 0, scl_slope = 0, scl_inter = 0;
  int qform_code = 0, sform_code = 0;
  double quatern[3] = {}, qoffset[3] = {};
  double srow[3][4] = {};
};

// Where each field lies in one version's header, and the types it stores them in: Dim for dim[],
// Real for the spacings, scalings and transforms, Offset for vox_offset, Code for the form codes.
struct NiftiLayout {
  int version, magic, datatype, bitpix, dim, pixdim, vox_offset, scl_slope, scl_inter, qform_code,
      sform_code, quatern, qoffset, srow;
  const char* pair_magic;
};
constexpr NiftiLayout kNifti1{1,   344, 70,  72,  40,  76,  108,  112,
                              116, 252, 254, 256, 268, 280, "ni1"};
constexpr NiftiLayout kNifti2{2, 4, 12, 14, 16, 104, 168, 176, 184, 344, 348, 352, 376, 400, "ni2"};

template <class Dim, class Real, class Offset, class Code>
NiftiFields nifti_fields(const unsigned char* h, bool swap, const NiftiLayout& at) {
  NiftiFields f;
  f.version = at.version;
  f.pair = std::memcmp(h + at.magic, at.pair_magic, 4) == 0;
  f.datatype = read_as<std::int16_t>(h + at.datatype, swap);
  f.bitpix = read_as<std::int16_t>(h + at.bitpix, swap);
  const auto real = [&](int offset, int i) {
    return static_cast<double>(
        read_as<Real>(h + offset + static_cast<int>(sizeof(Real)) * i, swap));
  };
  for (int i = 0; i < 8; ++i) {
    f.dim[i] = read_as<Dim>(h + at.dim + static_cast<int>(sizeof(Dim)) * i, swap);
    f.pixdim[i] = real(at.pixdim, i);
  }
  f.vox_offset = static_cast<double>(read_as<Offset>(h + at.vox_offset, swap));
  f.scl_slope = real(at.scl_slope, 0);
  f.scl_inter = real(at.scl_inter, 0);
  f.qform_code = read_as<Code>(h + at.qform_code, swap);
  f.sform_code = read_as<Code>(h + at.sform_code, swap);
  for (int i = 0; i < 3; ++i) {
    f.quatern[i] = real(at.quatern, i);
    f.qoffset[i] = real(at.qoffset, i);
    for (int j = 0; j < 4; ++j) f.srow[i][j] = real(at.srow, 4 * i + j);
  }
  return f;
}

NiftiFields nifti1_fields(const unsigned char* h, bool swap) {
  return nifti_fields<std::int16_t, float, float, std::int16_t>(h, swap, kNifti1);
}

NiftiFields nifti2_fields(const unsigned char* h, bool swap) {
  return nifti_fields<std::int64_t, double, std::int64_t, std::int32_t>(h, swap, kNifti2);
}

void check_nifti_sizes(const NiftiFields& f, const std::string& name, HeaderFacts& out) {
  const std::int64_t ndim = f.dim[0];
  if (ndim < 1 || ndim > 7) refuse(name, "dim[0] is " + std::to_string(ndim) + "; it must be 1..7");
  out.voxels = 1;
  for (int i = 1; i <= ndim; ++i) {
    if (f.dim[i] < 1) {
      refuse(name, "dim[" + std::to_string(i) + "] is " + std::to_string(f.dim[i]) +
                       "; every axis up to dim[0] = " + std::to_string(ndim) +
                       " must have at least one voxel");
    }
    out.size.push_back(f.dim[i]);
    out.voxels = checked_mul(out.voxels, f.dim[i]);
    if (out.voxels < 0) refuse(name, "dim[1..dim[0]] overflow 64 bits");
  }
  out.element_bytes = datatype_bytes(f.datatype);
  if (out.element_bytes == 0)
    refuse(name, "datatype " + std::to_string(f.datatype) + " is not a scalar type that is read");
  if (f.bitpix != 8 * out.element_bytes) {
    refuse(name, "bitpix is " + std::to_string(f.bitpix) + " but datatype " +
                     std::to_string(f.datatype) + " has " + std::to_string(8 * out.element_bytes) +
                     " bits");
  }
  out.data_bytes = checked_mul(out.voxels, out.element_bytes);
  if (out.data_bytes < 0) refuse(name, "the data size overflows 64 bits");
}

void check_nifti_offset_and_scaling(const NiftiFields& f, const std::string& name,
                                    HeaderFacts& out) {
  const double min_offset = f.version == 1 ? 352 : 544;
  const double v = f.vox_offset;
  if (!std::isfinite(v) || v != std::floor(v) || v < 0 || v > 1e12 || (!f.pair && v < min_offset)) {
    refuse(name, "vox_offset " + num(v) + " is invalid (a single-file NIfTI-" +
                     std::to_string(f.version) + " needs a whole number >= " + num(min_offset) +
                     ")");
  }
  out.data_offset = static_cast<std::int64_t>(v);
  if (!std::isfinite(f.scl_slope) || (f.scl_slope != 0 && !std::isfinite(f.scl_inter)))
    refuse(name,
           "scl_slope/scl_inter " + num(f.scl_slope) + "/" + num(f.scl_inter) + " are not finite");
  out.scl_slope = f.scl_slope;
  out.scl_inter = f.scl_slope == 0 ? 0 : f.scl_inter;
}

// Rotation of the quaternion (b, c, d) as nifti1_io computes it (row-major 3x3).
std::array<double, 9> quaternion_rotation(double b, double c, double d) {
  double a = 1.0 - (b * b + c * c + d * d);
  if (a < 1e-7) {
    a = 1.0 / std::sqrt(b * b + c * c + d * d);
    b *= a, c *= a, d *= a;
    a = 0;
  } else {
    a = std::sqrt(a);
  }
  return {
      a * a + b * b - c * c - d * d, 2 * (b * c - a * d),           2 * (b * d + a * c),
      2 * (b * c + a * d),           a * a + c * c - b * b - d * d, 2 * (c * d - a * b),
      2 * (b * d - a * c),           2 * (c * d + a * b),           a * a + d * d - c * c - b * b};
}

double det3(const double m[3][4]) {
  return m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
         m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
         m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
}

// Whether the sform's three columns are mutually orthogonal (a rotation times spacing).
bool orthogonal_columns(const double m[3][4]) {
  double c[3][3];
  for (int j = 0; j < 3; ++j) {
    const double n = std::sqrt(m[0][j] * m[0][j] + m[1][j] * m[1][j] + m[2][j] * m[2][j]);
    for (int i = 0; i < 3; ++i) c[j][i] = m[i][j] / n;
  }
  for (int a = 0; a < 3; ++a)
    for (int b = a + 1; b < 3; ++b)
      if (std::fabs(c[a][0] * c[b][0] + c[a][1] * c[b][1] + c[a][2] * c[b][2]) > 1e-4) return false;
  return true;
}

// Checks the orientation fields and derives the geometry (LPS: the first two world axes negated):
// the sform when it is set and has orthogonal axes (spacing: its axes' lengths, as nibabel), else
// the qform (spacing from pixdim), else identity axes. The same affine as nibabel's wherever a
// transform is set (tests/lib/io/test_nibabel_geometry.cpp).
void check_nifti_geometry(const NiftiFields& f, const std::string& name, HeaderFacts& out) {
  for (int i = 1; i <= 3; ++i) {
    if (i > f.dim[0]) break;
    const double p = f.pixdim[i];
    if (!std::isfinite(p) || p == 0)
      refuse(name, "pixdim[" + std::to_string(i) + "] is " + num(p) +
                       "; voxel spacing must be finite and non-zero");
    if (p < 0)
      out.warnings.push_back("pixdim[" + std::to_string(i) + "] is negative (" + num(p) +
                             "); its magnitude is used as the spacing");
  }
  auto bad_code = [](int c) { return c < 0 || c > 5; };
  if (bad_code(f.qform_code) || bad_code(f.sform_code))
    refuse(name, "qform_code/sform_code " + std::to_string(f.qform_code) + "/" +
                     std::to_string(f.sform_code) + " are not NIfTI transform codes (0..5)");
  if (f.qform_code > 0) {
    for (int i = 0; i < 3; ++i)
      if (!std::isfinite(f.quatern[i]) || !std::isfinite(f.qoffset[i]))
        refuse(name, "the qform (quatern_b/c/d, qoffset_x/y/z) has non-finite values");
    const double n2 =
        f.quatern[0] * f.quatern[0] + f.quatern[1] * f.quatern[1] + f.quatern[2] * f.quatern[2];
    if (n2 > 1.0 + 1e-5) refuse(name, "the qform quaternion (b, c, d) is longer than 1");
  }
  if (f.sform_code > 0) {
    for (const auto& row : f.srow)
      for (double v : row)
        if (!std::isfinite(v)) refuse(name, "the sform (srow_x/y/z) has non-finite values");
    double scale = 0;
    for (const auto& row : f.srow)
      for (int j = 0; j < 3; ++j) scale = std::max(scale, std::fabs(row[j]));
    if (!(std::fabs(det3(f.srow)) > 1e-9 * scale * scale * scale) || scale == 0)
      refuse(name, "the sform's 3x3 matrix is singular");
  }
  if (f.qform_code == 0 && f.sform_code == 0) out.warnings.push_back(kNoOrientationWarning);
  Geometry& g = out.geometry;
  double m[3][4] = {};
  double spacing[3] = {};  // from pixdim, unless the sform is used (below)
  for (int i = 0; i < 3; ++i) spacing[i] = i < f.dim[0] ? std::fabs(f.pixdim[i + 1]) : 1.0;
  bool use_sform = f.sform_code > 0;
  if (use_sform && !orthogonal_columns(f.srow)) {
    if (f.qform_code == 0)
      refuse(name, "the sform's axes are not orthogonal (shear) and there is no qform");
    out.warnings.push_back("the sform's axes are not orthogonal (shear); the qform is used");
    use_sform = false;
  }
  if (use_sform) {
    std::memcpy(m, f.srow, sizeof m);
    // The sform states the voxel size itself (its axes' lengths), as nibabel reads it; ITK takes
    // pixdim even then. Where the two disagree the sform wins, with a warning.
    for (int j = 0; j < 3; ++j) {
      const double len = std::sqrt(m[0][j] * m[0][j] + m[1][j] * m[1][j] + m[2][j] * m[2][j]);
      if (std::fabs(len - spacing[j]) > 1e-4 * std::max(1.0, len))
        out.warnings.push_back("pixdim[" + std::to_string(j + 1) + "] is " + num(spacing[j]) +
                               " but the sform's axis is " + num(len) +
                               " mm long; the sform's length is used");
      spacing[j] = len;
    }
  } else if (f.qform_code > 0) {
    const auto r = quaternion_rotation(f.quatern[0], f.quatern[1], f.quatern[2]);
    const double qfac = f.pixdim[0] < 0 ? -1.0 : 1.0;
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) m[i][j] = r[i * 3 + j] * (j == 2 ? qfac : 1.0);
      m[i][3] = f.qoffset[i];
    }
  } else {
    for (int i = 0; i < 3; ++i) m[i][i] = 1.0;
  }
  for (int i = 0; i < 3; ++i) {
    const double sign = i < 2 ? -1.0 : 1.0;  // RAS (NIfTI) to LPS (ITK)
    g.spacing[i] = spacing[i];
    g.origin[i] = sign * m[i][3];
  }
  for (int j = 0; j < 3; ++j) {
    const double n = std::sqrt(m[0][j] * m[0][j] + m[1][j] * m[1][j] + m[2][j] * m[2][j]);
    for (int i = 0; i < 3; ++i) g.direction[i * 3 + j] = (i < 2 ? -1.0 : 1.0) * m[i][j] / n;
  }
}

}  // namespace

HeaderFacts parse_nifti_header(const unsigned char* h, std::size_t n, const std::string& name) {
  if (n < 348) refuse(name, "shorter than a NIfTI header (" + std::to_string(n) + " bytes)");
  const std::int32_t size_le = read_as<std::int32_t>(h, false);
  const bool swap = size_le != 348 && size_le != 540;
  const std::int32_t sizeof_hdr = read_as<std::int32_t>(h, swap);
  HeaderFacts out;
  out.swap = swap;
  NiftiFields f;
  if (sizeof_hdr == 348) {
    if (std::memcmp(h + 344, "n+1", 4) != 0 && std::memcmp(h + 344, "ni1", 4) != 0) {
      std::string magic;
      for (int i = 0; i < 4; ++i)
        magic += std::isprint(h[344 + i]) ? std::string(1, static_cast<char>(h[344 + i]))
                                          : "\\x" + std::to_string(h[344 + i]);
      refuse(name, "NIfTI-1 magic is \"" + magic +
                       "\", not \"n+1\" or \"ni1\" (an Analyze 7.5 header has no orientation; "
                       "convert it to NIfTI)");
    }
    f = nifti1_fields(h, swap);
    out.format = "nifti1";
  } else if (sizeof_hdr == 540) {
    if (n < 540) refuse(name, "shorter than a NIfTI-2 header (" + std::to_string(n) + " bytes)");
    static const unsigned char kMagic2[2][8] = {{'n', '+', '2', 0, '\r', '\n', 032, '\n'},
                                                {'n', 'i', '2', 0, '\r', '\n', 032, '\n'}};
    if (std::memcmp(h + 4, kMagic2[0], 8) != 0 && std::memcmp(h + 4, kMagic2[1], 8) != 0)
      refuse(name, "NIfTI-2 magic is wrong (or damaged by a text-mode transfer)");
    f = nifti2_fields(h, swap);
    out.format = "nifti2";
  } else {
    refuse(name, "not a NIfTI, NRRD or MetaImage file (read as NIfTI, sizeof_hdr is " +
                     std::to_string(read_as<std::int32_t>(h, false)) +
                     ", neither 348 nor 540 in either byte order)");
  }
  out.datatype = f.datatype;
  check_nifti_sizes(f, name, out);
  check_nifti_offset_and_scaling(f, name, out);
  check_nifti_geometry(f, name, out);
  out.pair = f.pair;
  return out;
}

}  // namespace spineparse::io
