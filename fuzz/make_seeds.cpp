// Writes the seed corpora of every fuzz target: make_seeds OUT_DIR SOURCE_DIR. Each target gets
// OUT_DIR/<target>/ with small valid inputs (and a few near-misses), so fuzzing starts deep in
// the parsers. Nothing here is committed; scripts/fuzz regenerates it.
#include <zip.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "corpus/volume_bytes.hpp"

namespace fs = std::filesystem;
namespace t = spineparse::testing;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void put(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  t::write_bytes((dir / name).string(), bytes);
}

std::string nrrd(const std::string& extra, const std::string& encoding) {
  return "NRRD0004\ntype: float\ndimension: 3\nspace: left-posterior-superior\nsizes: 4 3 2\n"
         "space directions: (0.5,0,0) (0,0.75,0) (0,0,4)\nspace origin: (10,-20,5)\nencoding: " +
         encoding + "\nendian: little\n" + extra;
}

std::string mha(const std::string& extra, bool compressed) {
  return std::string("ObjectType = Image\nNDims = 3\nBinaryData = True\n") +
         "CompressedData = " + (compressed ? "True" : "False") +
         "\nTransformMatrix = 1 0 0 0 1 0 0 0 1\nOffset = 10 -20 5\nElementSpacing = 0.5 0.75 4\n"
         "DimSize = 4 3 2\nElementType = MET_FLOAT\n" +
         extra + "ElementDataFile = LOCAL\n";
}

// A torch.save archive holding {'w': tensor([1., 2.])}: the pickle opcodes torch.save writes.
std::string checkpoint_zip(const fs::path& tmp) {
  using namespace std::string_literals;  // the opcodes' arguments hold NUL bytes
  std::string pkl = "\x80\x02}X\x01\x00\x00\x00w"s;
  pkl += "ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storage"s;
  pkl +=
      "ctorch\nFloatStorage\nX\x01\x00\x00\x00"
      "0X\x03\x00\x00\x00"
      "cpuK\x02tQ"s;
  pkl += "K\x00K\x02\x85K\x01\x85\x89"s;
  pkl += "ccollections\nOrderedDict\n)RtRs."s;
  const float w[2] = {1, 2};
  const std::string data(reinterpret_cast<const char*>(w), sizeof w);
  int err = 0;
  zip_t* z = zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  const std::pair<const char*, const std::string*> entries[] = {{"archive/data.pkl", &pkl},
                                                                {"archive/data/0", &data}};
  for (auto [name, bytes] : entries) {
    zip_source_t* s = zip_source_buffer(z, bytes->data(), bytes->size(), 0);
    const zip_int64_t i = zip_file_add(z, name, s, ZIP_FL_OVERWRITE);
    zip_set_file_compression(z, static_cast<zip_uint64_t>(i), ZIP_CM_STORE, 0);
  }
  zip_close(z);
  return slurp(tmp);
}

// A minimal Part 10 MR slice (explicit VR little endian), 4 x 3 pixels of 16 bits.
std::string dicom_slice() {
  auto element = [](std::uint16_t group, std::uint16_t elem, const char* vr, std::string value) {
    if (value.size() % 2) value += (std::string(vr) == "UI" ? '\0' : ' ');
    std::string e;
    auto u16 = [&](std::uint32_t v) { e += static_cast<char>(v & 0xff), e += static_cast<char>(v >> 8); };
    u16(group), u16(elem);
    e += vr;
    const bool long_form = std::string(vr) == "OW" || std::string(vr) == "OB";
    if (long_form) {
      u16(0);
      u16(value.size() & 0xffff), u16(value.size() >> 16);
    } else {
      u16(static_cast<std::uint32_t>(value.size()));
    }
    return e + value;
  };
  auto us = [](std::uint16_t v) { return std::string{static_cast<char>(v & 0xff), static_cast<char>(v >> 8)}; };
  const std::string ts = element(0x0002, 0x0010, "UI", "1.2.840.10008.1.2.1");
  std::string meta = element(0x0002, 0x0000, "UL", std::string{static_cast<char>(ts.size()), 0, 0, 0}) + ts;
  std::string ds = element(0x0008, 0x0060, "CS", "MR") +
                   element(0x0020, 0x0032, "DS", "10\\-20\\5") +
                   element(0x0020, 0x0037, "DS", "0\\1\\0\\0\\0\\-1") +
                   element(0x0028, 0x0002, "US", us(1)) + element(0x0028, 0x0004, "CS", "MONOCHROME2") +
                   element(0x0028, 0x0010, "US", us(4)) + element(0x0028, 0x0011, "US", us(3)) +
                   element(0x0028, 0x0030, "DS", "0.5\\0.75") + element(0x0028, 0x0100, "US", us(16)) +
                   element(0x0028, 0x0101, "US", us(12)) + element(0x0028, 0x0102, "US", us(11)) +
                   element(0x0028, 0x0103, "US", us(0)) +
                   element(0x7fe0, 0x0010, "OW", std::string(24, '\x01'));
  return std::string(128, '\0') + "DICM" + meta + ds;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  const fs::path out = argv[1], src = argv[2];
  const std::string data = t::voxel_bytes(4, 3, 2, true);
  // nifti_header: headers alone, both versions, both byte orders, a few orientations.
  for (bool big : {false, true}) {
    auto h1 = t::nifti1_header(4, 3, 2, true, big);
    put(out / "nifti_header", std::string("n1") + (big ? "be" : "le"), h1.str());
    h1.set<std::int16_t>(254, 0);
    put(out / "nifti_header", std::string("n1q") + (big ? "be" : "le"), h1.str());
    put(out / "nifti_header", std::string("n2") + (big ? "be" : "le"),
        t::nifti2_header(4, 3, 2, true, big).str());
  }
  // volume_file: first byte picks .nii, .nii.gz, .nrrd, .mha.
  const std::string n1 = t::nifti1_header(4, 3, 2).str() + data;
  const std::string n2 = t::nifti2_header(4, 3, 2).str() + data;
  put(out / "volume_file", "n1_raw", std::string(1, 0) + n1);
  put(out / "volume_file", "n1_gz", std::string(1, 1) + t::gzip(n1));
  put(out / "volume_file", "n2_gz", std::string(1, 1) + t::gzip(n2));
  put(out / "volume_file", "nrrd_raw", std::string(1, 2) + nrrd("", "raw") + "\n" + data);
  put(out / "volume_file", "nrrd_gz", std::string(1, 2) + nrrd("", "gzip") + "\n" + t::gzip(data));
  put(out / "volume_file", "mha_raw", std::string(1, 3) + mha("", false) + data);
  put(out / "volume_file", "mha_z", std::string(1, 3) + mha("", true) + t::zlib_compress(data));
  // text_headers: first byte odd for NRRD, even for MetaImage.
  put(out / "text_headers", "nrrd", "\x01" + nrrd("", "raw"));
  put(out / "text_headers", "nhdr", "\x01" + nrrd("data file: x.raw\nbyte skip: 0\n", "gzip"));
  put(out / "text_headers", "mha", std::string(1, 0) + mha("HeaderSize = -1\n", false));
  put(out / "text_headers", "mhd", std::string(1, 0) + mha("ElementNumberOfChannels = 1\n", true));
  // graph: the graphs we ship, and a small io graph.
  for (const auto& e : fs::directory_iterator(src / "graphs"))
    put(out / "graph", e.path().filename().string(), slurp(e.path()));
  put(out / "graph", "io.json",
      R"({"schema_version": 1, "max_in_flight": 2, "nodes": [{"id": "read", "stage": "fz.source", "params": {"layout": "flat", "cases": ["a"], "max_voxels": 9}}, {"id": "f", "stage": "fz.filter", "params": {"scale": 2.5}}, {"id": "w", "stage": "fz.sink", "params": {"field": "labels"}}]})");
  // set: one --set per line, every parameter type.
  put(out / "set", "types",
      "read.max_voxels=100\nread.flag=false\nread.layout=flat\nread.cases=[\"a\",\"b\"]\n"
      "filter.name=x_{id}.nrrd\nfilter.scale=0.5\nfilter.concurrency=2\n");
  // safetensors: a header and eight bytes of data.
  const std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::string st(8, '\0');
  st[0] = static_cast<char>(header.size());
  put(out / "safetensors", "tiny", st + header + std::string(8, '\x01'));
  // dicom: one MR slice, and the same with 12 bits allocated.
  const std::string slice = dicom_slice();
  put(out / "dicom", "slice", slice);
  std::string twelve = slice;
  const auto at = twelve.find(std::string("\x28\x00\x00\x01US", 6));
  if (at != std::string::npos) twelve[at + 8] = 12;
  put(out / "dicom", "bits12", twelve);
  // checkpoint: a tiny torch.save archive.
  fs::create_directories(out / "checkpoint");
  put(out / "checkpoint", "tiny", checkpoint_zip(out / "checkpoint" / ".tmp.zip"));
  fs::remove(out / "checkpoint" / ".tmp.zip");
  return 0;
}
