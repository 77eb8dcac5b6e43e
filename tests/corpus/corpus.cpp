#include "corpus/corpus.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "corpus/volume_bytes.hpp"

namespace spineparse::testing {
namespace fs = std::filesystem;

namespace {

constexpr int H = 12, W = 10, D = 6;
using Mutate = std::function<void(Bytes&)>;

std::string file(const fs::path& dir, const std::string& name) { return (dir / name).string(); }

// A NIfTI-1 case: the good header changed by `m`, float data, .nii.gz unless `raw`.
void nii1(const fs::path& dir, const std::string& id, const Mutate& m, bool raw = false,
          bool big = false) {
  Bytes h = nifti1_header(H, W, D, true, big);
  if (m) m(h);
  const std::string bytes = h.str() + voxel_bytes(H, W, D, true, big);
  write_bytes(file(dir, id + (raw ? ".nii" : ".nii.gz")), raw ? bytes : gzip(bytes));
}

void nii2(const fs::path& dir, const std::string& id, const Mutate& m, bool raw = false,
          bool big = false) {
  Bytes h = nifti2_header(H, W, D, true, big);
  if (m) m(h);
  const std::string bytes = h.str() + voxel_bytes(H, W, D, true, big);
  write_bytes(file(dir, id + (raw ? ".nii" : ".nii.gz")), raw ? bytes : gzip(bytes));
}

// The good NIfTI-1 bytes with `edit` applied to the whole file (data included).
void nii1_bytes(const fs::path& dir, const std::string& name,
                const std::function<void(std::string&)>& edit, bool gz_after = false) {
  std::string b = nifti1_header(H, W, D).str() + voxel_bytes(H, W, D, true);
  if (!gz_after) edit(b);
  if (gz_after) {
    b = gzip(b);
    edit(b);
  }
  write_bytes(file(dir, name), b);
}

std::string nrrd_header(const std::map<std::string, std::string>& change) {
  std::vector<std::pair<std::string, std::string>> f = {
      {"type", "float"},
      {"dimension", "3"},
      {"space", "left-posterior-superior"},
      {"sizes", "12 10 6"},
      {"space directions", "(0.5,0,0) (0,0.75,0) (0,0,4)"},
      {"space origin", "(10,-20,5)"},
      {"encoding", "raw"},
      {"endian", "little"}};
  std::string out = "NRRD0004\n";
  for (auto& [k, v] : f) {
    auto it = change.find(k);
    if (it == change.end())
      out += k + ": " + v + "\n";
    else if (!it->second.empty())
      out += k + ": " + it->second + "\n";
  }
  for (auto& [k, v] : change)
    if (std::none_of(f.begin(), f.end(), [&](auto& p) { return p.first == k; }))
      out += k + ": " + v + "\n";
  return out;
}

void nrrd(const fs::path& dir, const std::string& id, const std::map<std::string, std::string>& c,
          double keep = 1.0) {
  std::string data = voxel_bytes(H, W, D, true);
  if (c.count("encoding") && c.at("encoding") == "gzip") data = gzip(data);
  data.resize(static_cast<std::size_t>(data.size() * keep));
  write_bytes(file(dir, id + ".nrrd"), nrrd_header(c) + "\n" + data);
}

std::string mha_header(const std::map<std::string, std::string>& change) {
  std::vector<std::pair<std::string, std::string>> f = {
      {"ObjectType", "Image"},     {"NDims", "3"},
      {"BinaryData", "True"},      {"BinaryDataByteOrderMSB", "False"},
      {"CompressedData", "False"}, {"TransformMatrix", "1 0 0 0 1 0 0 0 1"},
      {"Offset", "10 -20 5"},      {"ElementSpacing", "0.5 0.75 4"},
      {"DimSize", "12 10 6"},      {"ElementType", "MET_FLOAT"},
      {"ElementDataFile", "LOCAL"}};
  std::string out;
  for (auto& [k, v] : f) {
    auto it = change.find(k);
    if (k == "ElementDataFile")
      for (auto& [k2, v2] : change)
        if (std::none_of(f.begin(), f.end(), [&](auto& p) { return p.first == k2; }))
          out += k2 + " = " + v2 + "\n";
    if (it == change.end())
      out += k + " = " + v + "\n";
    else if (!it->second.empty())
      out += k + " = " + it->second + "\n";
  }
  return out;
}

void mha(const fs::path& dir, const std::string& id, const std::map<std::string, std::string>& c,
         double keep = 1.0) {
  std::string data = voxel_bytes(H, W, D, true);
  if (c.count("CompressedData") && c.at("CompressedData") == "True") data = zlib_compress(data);
  data.resize(static_cast<std::size_t>(data.size() * keep));
  write_bytes(file(dir, id + ".mha"), mha_header(c) + data);
}

template <typename T>
Mutate set(std::size_t at, T v) {
  return [=](Bytes& h) { h.set<T>(at, v); };
}
Mutate both(Mutate a, Mutate b) {
  return [=](Bytes& h) {
    a(h);
    b(h);
  };
}

// NIfTI-1 field offsets.
constexpr std::size_t kDim = 40, kDatatype = 70, kBitpix = 72, kPixdim = 76, kVoxOffset = 108,
                      kSlope = 112, kInter = 116, kQcode = 252, kScode = 254, kQuat = 256,
                      kQoff = 268, kSrow = 280, kMagic = 344;

std::vector<CorpusKind> nifti1_kinds() {
  auto k = [](std::string name, std::string expect, std::string msg, Mutate m, bool raw = false,
              bool big = false) {
    return CorpusKind{name, expect, msg,
                      [=](const fs::path& d, const std::string& id) { nii1(d, id, m, raw, big); }};
  };
  const Mutate no_forms = both(set<std::int16_t>(kQcode, 0), set<std::int16_t>(kScode, 0));
  return {
      k("n1_good_raw", "ok", "", nullptr, true),
      k("n1_big_endian", "ok", "", nullptr, false, true),
      k("n1_big_endian_raw", "ok", "", nullptr, true, true),
      k("n1_bad_magic", "failed", "NIfTI-1 magic", [](Bytes& h) { h.text(kMagic, "xyz\0", 4); }),
      k("n1_pair_magic_in_nii", "failed", "separate .img file",
        [](Bytes& h) { h.text(kMagic, "ni1\0", 4); }),
      k("n1_sizeof_hdr_347", "failed", "not a NIfTI, NRRD or MetaImage", set<std::int32_t>(0, 347)),
      k("n1_dim0_zero", "failed", "dim[0] is 0", set<std::int16_t>(kDim, 0)),
      k("n1_dim0_eight", "failed", "dim[0] is 8", set<std::int16_t>(kDim, 8)),
      k("n1_dim3_zero", "failed", "dim[3] is 0", set<std::int16_t>(kDim + 6, 0)),
      k("n1_dim1_negative", "failed", "dim[1] is -12", set<std::int16_t>(kDim + 2, -12)),
      k("n1_2d", "failed", "is 2-D", set<std::int16_t>(kDim, 2)),
      k("n1_4d_t2", "failed", "is 4-D (12x10x3x2)",
        both(set<std::int16_t>(kDim, 4),
             both(set<std::int16_t>(kDim + 6, 3), set<std::int16_t>(kDim + 8, 2)))),
      k("n1_4d_t1", "ok", "", set<std::int16_t>(kDim, 4)),
      k("n1_claims_32767_cubed", "failed", "over the limit max_voxels",
        both(set<std::int16_t>(kDim + 2, 32767),
             both(set<std::int16_t>(kDim + 4, 32767), set<std::int16_t>(kDim + 6, 32767)))),
      k("n1_claims_more_than_file", "failed", "truncated", set<std::int16_t>(kDim + 6, 200)),
      k("n1_datatype_unknown", "failed", "datatype 3", set<std::int16_t>(kDatatype, 3)),
      k("n1_datatype_rgb", "failed", "datatype 128",
        both(set<std::int16_t>(kDatatype, 128), set<std::int16_t>(kBitpix, 24))),
      k("n1_datatype_complex", "failed", "datatype 32", set<std::int16_t>(kDatatype, 32)),
      k("n1_bitpix_mismatch", "failed", "bitpix is 16", set<std::int16_t>(kBitpix, 16)),
      k("n1_vox_offset_zero", "failed", "vox_offset 0", set<float>(kVoxOffset, 0)),
      k("n1_vox_offset_nan", "failed", "vox_offset nan", set<float>(kVoxOffset, NAN)),
      k("n1_vox_offset_1e30", "failed", "vox_offset 1e+30", set<float>(kVoxOffset, 1e30f)),
      k("n1_vox_offset_fraction", "failed", "vox_offset 352.5", set<float>(kVoxOffset, 352.5f)),
      k("n1_vox_offset_past_end", "failed", "truncated", set<float>(kVoxOffset, 100000)),
      k("n1_pixdim_zero", "failed", "pixdim[1] is 0", set<float>(kPixdim + 4, 0)),
      k("n1_pixdim_nan", "failed", "pixdim[2] is nan", set<float>(kPixdim + 8, NAN)),
      k("n1_pixdim_inf", "failed", "pixdim[3] is inf", set<float>(kPixdim + 12, INFINITY)),
      k("n1_pixdim_negative", "warning", "pixdim[1] is negative", set<float>(kPixdim + 4, -0.5f)),
      k("n1_pixdim_disagrees_with_sform", "warning", "the sform's length is used",
        set<float>(kPixdim + 12, 3.0f)),
      k("n1_quaternion_nan", "failed", "qform",
        both(set<float>(kQuat, NAN), set<std::int16_t>(kScode, 0))),
      k("n1_qoffset_inf", "failed", "qform", set<float>(kQoff, INFINITY)),
      k("n1_quaternion_too_long", "failed", "longer than 1", set<float>(kQuat + 4, 2.0f)),
      k("n1_sform_nan", "failed", "sform",
        both(set<float>(kSrow, NAN), set<std::int16_t>(kQcode, 0))),
      k("n1_sform_singular", "failed", "singular",
        both(set<float>(kSrow, 0), both(set<float>(kSrow + 16, 0), set<float>(kSrow + 20, 0)))),
      k("n1_sform_shear_with_qform", "warning", "shear", set<float>(kSrow + 4, 0.3f)),
      k("n1_sform_only", "ok", "", set<std::int16_t>(kQcode, 0)),
      k("n1_qform_only", "ok", "", set<std::int16_t>(kScode, 0)),
      k("n1_no_orientation", "warning", "neither qform nor sform", no_forms),
      k("n1_xform_code_99", "failed", "transform codes", set<std::int16_t>(kQcode, 99)),
      k("n1_slope_nan", "failed", "scl_slope", set<float>(kSlope, NAN)),
      k("n1_slope_scaled", "ok", "", both(set<float>(kSlope, 2.0f), set<float>(kInter, -3.0f))),
      k("n1_slope_zero", "ok", "", set<float>(kSlope, 0)),
      // Finite in the file, infinite once scaled: found by the reader stage, not the file scan.
      k("n1_slope_overflows", "failed", "non-finite voxels", set<float>(kSlope, 3e38f)),
      k("n1_inter_inf", "failed", "scl_inter",
        both(set<float>(kSlope, 2.0f), set<float>(kInter, INFINITY))),
  };
}

std::vector<CorpusKind> data_and_gzip_kinds() {
  auto bytes = [](std::string name, std::string expect, std::string msg, std::string ext,
                  std::function<void(std::string&)> edit, bool gz_after) {
    return CorpusKind{name, expect, msg, [=](const fs::path& d, const std::string& id) {
                        nii1_bytes(d, id + ext, edit, gz_after);
                      }};
  };
  const std::size_t data0 = 352;
  return {
      bytes(
          "data_nan", "failed", "non-finite voxels", ".nii.gz",
          [=](std::string& b) { std::memcpy(&b[data0 + 40], "\x00\x00\xc0\x7f", 4); }, false),
      bytes(
          "data_inf", "failed", "non-finite voxels", ".nii",
          [=](std::string& b) { std::memcpy(&b[data0 + 80], "\x00\x00\x80\x7f", 4); }, false),
      bytes(
          "truncated_raw_half", "failed", "truncated", ".nii",
          [](std::string& b) { b.resize(352 + (b.size() - 352) / 2); }, false),
      bytes(
          "header_only_raw", "failed", "truncated: 0 of 2880", ".nii",
          [](std::string& b) { b.resize(352); }, false),
      bytes(
          "shorter_than_header", "failed", "shorter than a NIfTI header", ".nii",
          [](std::string& b) { b.resize(100); }, false),
      bytes(
          "empty_file", "failed", "is empty (0 bytes)", ".nii.gz",
          [](std::string& b) { b.clear(); }, false),
      bytes(
          "random_bytes", "failed", "not a NIfTI, NRRD or MetaImage", ".nii.gz",
          [](std::string& b) {
            for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<char>((i * 7919) >> 3);
          },
          false),
      bytes(
          "constant_volume", "failed", "every voxel is", ".nii.gz",
          [](std::string& b) { std::fill(b.begin() + 352, b.end(), '\0'); }, false),
      bytes(
          "gz_truncated", "failed", "truncated", ".nii.gz",
          [](std::string& b) { b.resize(b.size() * 6 / 10); }, true),
      bytes(
          "gz_corrupt_middle", "failed", "corrupt", ".nii.gz",
          [](std::string& b) {
            for (std::size_t i = b.size() / 2; i < b.size() / 2 + 16; ++i) b[i] = '\x55';
          },
          true),
      bytes(
          "gz_bad_crc", "failed", "corrupt", ".nii.gz",
          [](std::string& b) { b[b.size() - 6] = static_cast<char>(b[b.size() - 6] ^ 0x5a); },
          true),
      bytes(
          "gz_header_only", "failed", "truncated", ".nii.gz",
          [](std::string& b) { b = gzip(nifti1_header(H, W, D).str()); }, true),
      bytes(
          "gz_twice", "failed", "compressed twice", ".nii.gz", [](std::string& b) { b = gzip(b); },
          true),
      bytes(
          "gz_two_members", "ok", "", ".nii.gz",
          [](std::string& b) {
            std::string plain = nifti1_header(H, W, D).str() + voxel_bytes(H, W, D, true);
            b = gzip(plain.substr(0, 1000)) + gzip(plain.substr(1000));
          },
          true),
      bytes(
          "raw_named_gz", "ok", "", ".nii.gz", [](std::string&) {}, false),
      bytes(
          "trailing_bytes_after_data", "ok", "", ".nii",
          [](std::string& b) { b += std::string(100, '\x01'); }, false),
  };
}

std::vector<CorpusKind> nifti2_kinds() {
  auto k = [](std::string name, std::string expect, std::string msg, Mutate m, bool raw = false,
              bool big = false) {
    return CorpusKind{name, expect, msg,
                      [=](const fs::path& d, const std::string& id) { nii2(d, id, m, raw, big); }};
  };
  return {
      k("n2_good", "ok", "", nullptr),
      k("n2_good_raw", "ok", "", nullptr, true),
      k("n2_big_endian", "ok", "", nullptr, false, true),
      k("n2_bad_magic", "failed", "NIfTI-2 magic",
        [](Bytes& h) { h.text(4, "n+2\0\n\n\032\n", 8); }),
      k("n2_dims_overflow", "failed", "overflow",
        [](Bytes& h) {
          for (int i = 1; i <= 3; ++i) h.set<std::int64_t>(16 + 8 * i, std::int64_t{1} << 40);
        }),
      k("n2_claims_huge", "failed", "over the limit max_voxels",
        [](Bytes& h) { h.set<std::int64_t>(16 + 24, 100000000); }),
      k("n2_vox_offset_small", "failed", "vox_offset 100", set<std::int64_t>(168, 100)),
      k("n2_sform_nan", "failed", "sform", set<double>(400, NAN)),
  };
}

std::vector<CorpusKind> nrrd_and_meta_kinds() {
  using M = std::map<std::string, std::string>;
  auto n = [](std::string name, std::string expect, std::string msg, M c, double keep = 1.0) {
    return CorpusKind{name, expect, msg,
                      [=](const fs::path& d, const std::string& id) { nrrd(d, id, c, keep); }};
  };
  auto m = [](std::string name, std::string expect, std::string msg, M c, double keep = 1.0) {
    return CorpusKind{name, expect, msg,
                      [=](const fs::path& d, const std::string& id) { mha(d, id, c, keep); }};
  };
  return {
      n("nrrd_raw", "ok", "", {}),
      n("nrrd_gzip", "ok", "", {{"encoding", "gzip"}}),
      n("nrrd_claims_2000x2000x1000", "failed", "over the limit max_voxels",
        {{"sizes", "2000 2000 1000"}}, 0.0),
      n("nrrd_truncated_raw", "failed", "truncated", {}, 0.5),
      n("nrrd_truncated_gzip", "failed", "truncated", {{"encoding", "gzip"}}, 0.5),
      n("nrrd_data_file_etc_passwd", "failed", "outside the header's folder",
        {{"data file", "/etc/passwd"}}, 0.0),
      n("nrrd_data_file_missing", "failed", "No such file", {{"data file", "nothere.raw"}}, 0.0),
      n("nrrd_type_block", "failed", "type \"block\"", {{"type", "block"}}),
      n("nrrd_sizes_short", "failed", "sizes has 2 numbers", {{"sizes", "12 10"}}),
      n("nrrd_size_negative", "failed", "every size must be >= 1", {{"sizes", "12 -10 6"}}),
      n("nrrd_direction_nan", "failed", "space directions",
        {{"space directions", "(nan,0,0) (0,0.75,0) (0,0,4)"}}),
      n("nrrd_encoding_bzip2", "failed", "encoding \"bzip2\"", {{"encoding", "bzip2"}}),
      n("nrrd_no_sizes", "failed", "needs dimension, type, sizes", {{"sizes", ""}}),
      n("nrrd_4d", "failed", "4-D",
        {{"dimension", "4"},
         {"sizes", "12 10 3 2"},
         {"space directions", "(0.5,0,0) (0,0.75,0) (0,0,4) none"}}),
      CorpusKind{"nhdr_detached", "ok", "",
                 [](const fs::path& d, const std::string& id) {
                   write_bytes(file(d, id + ".raw"), voxel_bytes(H, W, D, true));
                   write_bytes(file(d, id + ".nhdr"), nrrd_header({{"data file", id + ".raw"}}));
                 }},
      m("mha_raw", "ok", "", {}),
      m("mha_compressed", "ok", "", {{"CompressedData", "True"}}),
      m("mha_claims_2000x2000x1000", "failed", "over the limit max_voxels",
        {{"DimSize", "2000 2000 1000"}}, 0.0),
      m("mha_truncated", "failed", "truncated", {}, 0.5),
      m("mha_compressed_truncated", "failed", "truncated", {{"CompressedData", "True"}}, 0.5),
      m("mha_element_type_bad", "failed", "ElementType MET_STRING",
        {{"ElementType", "MET_STRING"}}),
      m("mha_dimsize_short", "failed", "DimSize has 2 numbers", {{"DimSize", "12 10"}}),
      m("mha_spacing_zero", "failed", "must be positive", {{"ElementSpacing", "0.5 0 4"}}),
      m("mha_three_channels", "failed", "3 components", {{"ElementNumberOfChannels", "3"}}),
      m("mha_matrix_nan", "failed", "transformmatrix has no direction",
        {{"TransformMatrix", "nan 0 0 0 1 0 0 0 1"}}),
      m("mhd_data_file_etc_passwd", "failed", "outside the header's folder",
        {{"ElementDataFile", "/etc/passwd"}}),
      CorpusKind{
          "mhd_detached", "ok", "",
          [](const fs::path& d, const std::string& id) {
            write_bytes(file(d, id + ".raw"), voxel_bytes(H, W, D, true));
            write_bytes(file(d, id + ".mhd"), mha_header({{"ElementDataFile", id + ".raw"}}));
          }},
  };
}

std::vector<CorpusKind> mask_kinds() {
  auto with_mask = [](std::string name, std::string expect, std::string msg, Mutate m,
                      std::function<void(std::string&)> edit = nullptr) {
    return CorpusKind{name, expect, msg, [=](const fs::path& d, const std::string& id) {
                        write_good_case(d, id);
                        Bytes h = nifti1_header(H, W, D, false);
                        if (m) m(h);
                        std::string b = h.str();
                        for (int i = 0; i < H * W * D; ++i) {
                          const std::int16_t v = static_cast<std::int16_t>(i % 3);
                          b.append(reinterpret_cast<const char*>(&v), 2);
                        }
                        if (edit) edit(b);
                        write_bytes(file(d, "mask_" + id + ".nii.gz"), gzip(b));
                      }};
  };
  return {
      with_mask("withmask_good", "ok", "", nullptr),
      with_mask("withmask_truncated", "failed", "mask_withmask_truncated.nii.gz is truncated",
                nullptr, [](std::string& b) { b.resize(b.size() / 2); }),
      with_mask("withmask_label_40", "failed", "is not a label", nullptr,
                [](std::string& b) { b[352 + 10] = 40; }),
      with_mask("withmask_other_spacing", "failed", "does not share the geometry",
                both(set<float>(kPixdim + 12, 3.0f), set<std::int16_t>(kScode, 0))),
      with_mask("withmask_other_size", "failed", "mask", set<std::int16_t>(kDim + 6, 5)),
      with_mask("withmask_sform_nan", "failed", "sform",
                both(set<float>(kSrow, NAN), set<std::int16_t>(kQcode, 0))),
      with_mask("withmask_no_orientation", "failed", "does not share the geometry",
                both(set<std::int16_t>(kQcode, 0), set<std::int16_t>(kScode, 0))),
  };
}

std::vector<CorpusKind> name_and_link_kinds() {
  auto k = [](std::string name, std::string expect, std::string msg,
              std::function<void(const fs::path&, const std::string&)> make) {
    return CorpusKind{name, expect, msg, make};
  };
  return {
      k("x{id}braces", "ok", "",
        [](const fs::path& d, const std::string& id) { write_good_case(d, id); }),
      k("name with spaces", "ok", "",
        [](const fs::path& d, const std::string& id) { write_good_case(d, id); }),
      k("Fall_\xc3\xbc", "ok", "",
        [](const fs::path& d, const std::string& id) { write_good_case(d, id); }),
      k("dup_id", "failed", "is ambiguous",
        [](const fs::path& d, const std::string& id) {
          write_good_case(d, id);
          nii1(d, id, nullptr, true);  // id.nii beside id.nii.gz
        }),
      k("dangling_link", "failed", "dangling symbolic link",
        [](const fs::path& d, const std::string& id) {
          fs::create_symlink(d / "does_not_exist.nii.gz", d / (id + ".nii.gz"));
        }),
      k("link_loop", "failed", "symbolic link loop",
        [](const fs::path& d, const std::string& id) {
          fs::create_symlink(d / (id + ".nii.gz"), d / (id + ".nii.gz"));
        }),
      k("link_to_good", "ok", "",
        [](const fs::path& d, const std::string& id) {
          fs::create_directories(d / "elsewhere");
          write_good_case(d / "elsewhere", id);
          fs::create_symlink(d / "elsewhere" / (id + ".nii.gz"), d / (id + ".nii.gz"));
        }),
      k("directory_named_volume", "failed", "is a directory",
        [](const fs::path& d, const std::string& id) {
          fs::create_directories(d / (id + ".nii.gz"));
        }),
      k("fifo_named_volume", "failed", "not a regular file",
        [](const fs::path& d, const std::string& id) {
          ::mkfifo((d / (id + ".nii.gz")).c_str(), 0644);
        }),
      k("hidden_file", "absent", "",
        [](const fs::path& d, const std::string& id) { write_good_case(d, "." + id); }),
      k("not_a_volume_name", "absent", "",
        [](const fs::path& d, const std::string& id) {
          write_bytes(file(d, id + ".txt"), "hello");
        }),
  };
}

}  // namespace

void write_good_case(const fs::path& dir, const std::string& id) { nii1(dir, id, nullptr); }

std::vector<CorpusKind> corpus_kinds() {
  std::vector<CorpusKind> all;
  for (auto part : {nifti1_kinds(), data_and_gzip_kinds(), nifti2_kinds(), nrrd_and_meta_kinds(),
                    mask_kinds(), name_and_link_kinds(), analyze_pair_kinds(), dicom_kinds()})
    all.insert(all.end(), part.begin(), part.end());
  return all;
}

}  // namespace spineparse::testing
