// NRRD and MetaImage headers: key/value text, parsed and checked before ITK sees the file.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <stdexcept>

#include "io/ascii.hpp"
#include "io/header.hpp"

namespace spineparse::io {
namespace fs = std::filesystem;

namespace {

[[noreturn]] void refuse(const std::string& name, const std::string& why) {
  throw std::runtime_error(name + ": " + why);
}

bool machine_is_big_endian() {
  const std::uint16_t one = 1;
  unsigned char first;
  std::memcpy(&first, &one, 1);
  return first == 0;
}

std::string trim(std::string_view s) {
  std::size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return std::string(s.substr(a, b - a));
}

// Whole numbers of a field ("256 256 30"); refuses anything else, naming the field.
std::vector<std::int64_t> integers(const std::string& v, const std::string& name,
                                   const std::string& field) {
  std::vector<std::int64_t> out;
  std::istringstream ss(v);
  std::string tok;
  while (ss >> tok) {
    char* end = nullptr;
    errno = 0;
    const long long x = std::strtoll(tok.c_str(), &end, 10);
    if (errno != 0 || end == tok.c_str() || *end != '\0')
      refuse(name, field + " has \"" + tok + "\", not a whole number");
    out.push_back(x);
  }
  return out;
}

// Numbers of a field, with NRRD's vector punctuation "(1,0,0)" read as separators; "none" and
// "nan" become NaN (allowed only where the caller says).
std::vector<double> numbers(std::string v, const std::string& name, const std::string& field) {
  for (char& c : v)
    if (c == '(' || c == ')' || c == ',') c = ' ';
  std::vector<double> out;
  std::istringstream ss(v);
  std::string tok;
  while (ss >> tok) {
    if (ascii_lower(tok) == "none" || ascii_lower(tok) == "nan") {
      out.push_back(NAN);
      continue;
    }
    char* end = nullptr;
    const double x = std::strtod(tok.c_str(), &end);
    if (end == tok.c_str() || *end != '\0' || !std::isfinite(x))
      refuse(name, field + " has \"" + tok + "\", not a finite number");
    out.push_back(x);
  }
  return out;
}

void set_sizes(HeaderFacts& out, const std::vector<std::int64_t>& sizes, const std::string& name,
               const std::string& field) {
  out.voxels = 1;
  for (auto s : sizes) {
    if (s < 1) refuse(name, field + " has " + std::to_string(s) + "; every size must be >= 1");
    out.voxels = checked_mul(out.voxels, s);
    if (out.voxels < 0) refuse(name, field + " multiply to more than 64 bits");
  }
  out.size = sizes;
}

// A detached data file: resolved against the header's folder and required to stay inside it.
std::string data_file_in(const std::string& dir, const std::string& file, const std::string& name) {
  if (file.empty()) refuse(name, "the data file name is empty");
  if (file.find('%') != std::string::npos || ascii_lower(file).rfind("list", 0) == 0)
    refuse(name, "data split over several files (\"" + file + "\") is not read");
  const fs::path base = fs::weakly_canonical(fs::path(dir.empty() ? "." : dir));
  const fs::path target = fs::weakly_canonical(base / file);
  const std::string b = base.string() + "/", t = target.string();
  if (t.compare(0, b.size(), b) != 0)
    refuse(name, "its data file \"" + file + "\" lies outside the header's folder " +
                     base.string() + "; only data next to the header is read");
  return t;
}

// NIfTI datatype code of a NRRD type name, 0 when unknown.
int nrrd_datatype(const std::string& t) {
  static const std::map<std::string, int> kTypes = {{"signed char", 256},
                                                    {"int8", 256},
                                                    {"int8_t", 256},
                                                    {"uchar", 2},
                                                    {"unsigned char", 2},
                                                    {"uint8", 2},
                                                    {"uint8_t", 2},
                                                    {"short", 4},
                                                    {"short int", 4},
                                                    {"signed short", 4},
                                                    {"signed short int", 4},
                                                    {"int16", 4},
                                                    {"int16_t", 4},
                                                    {"ushort", 512},
                                                    {"unsigned short", 512},
                                                    {"unsigned short int", 512},
                                                    {"uint16", 512},
                                                    {"uint16_t", 512},
                                                    {"int", 8},
                                                    {"signed int", 8},
                                                    {"int32", 8},
                                                    {"int32_t", 8},
                                                    {"uint", 768},
                                                    {"unsigned int", 768},
                                                    {"uint32", 768},
                                                    {"uint32_t", 768},
                                                    {"longlong", 1024},
                                                    {"long long", 1024},
                                                    {"long long int", 1024},
                                                    {"signed long long", 1024},
                                                    {"signed long long int", 1024},
                                                    {"int64", 1024},
                                                    {"int64_t", 1024},
                                                    {"ulonglong", 1280},
                                                    {"unsigned long long", 1280},
                                                    {"unsigned long long int", 1280},
                                                    {"uint64", 1280},
                                                    {"uint64_t", 1280},
                                                    {"float", 16},
                                                    {"double", 64}};
  auto it = kTypes.find(t);
  return it == kTypes.end() ? 0 : it->second;
}

// key -> value lines of a text header; `sep` is ':' (NRRD) or '=' (MetaImage).
std::vector<std::pair<std::string, std::string>> key_values(std::string_view text, char sep,
                                                            const std::string& name) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string line = trim(text.substr(pos, end - pos));
    pos = end + 1;
    if (line.empty() || line[0] == '#') continue;
    if (line.find('\0') != std::string::npos) refuse(name, "the header has a NUL byte");
    const std::size_t k = line.find(sep);
    if (k == std::string::npos) continue;  // NRRD magic line, or free text
    if (sep == ':' && k + 1 < line.size() && line[k + 1] == '=') continue;  // key:=value
    out.emplace_back(ascii_lower(trim(std::string_view(line).substr(0, k))),
                     trim(std::string_view(line).substr(k + 1)));
  }
  return out;
}

void check_orientation(const std::vector<double>& m, std::size_t axes, const std::string& name,
                       const std::string& field) {
  for (std::size_t a = 0; a < std::min<std::size_t>(axes, 3); ++a) {
    double n2 = 0;
    for (std::size_t r = 0; r < 3 && a * 3 + r < m.size(); ++r) {
      if (std::isnan(m[a * 3 + r]))
        refuse(name, field + " has no direction for spatial axis " + std::to_string(a));
      n2 += m[a * 3 + r] * m[a * 3 + r];
    }
    if (!(n2 > 0)) refuse(name, field + " has a zero vector for axis " + std::to_string(a));
  }
}

}  // namespace

HeaderFacts parse_nrrd_header(std::string_view text, const std::string& name,
                              const std::string& dir) {
  if (text.substr(0, 7) != "NRRD000") refuse(name, "not a NRRD header (no NRRD000x magic)");
  HeaderFacts out;
  out.format = "nrrd";
  std::map<std::string, std::string> f;
  for (auto& [k, v] : key_values(text, ':', name)) f[k] = v;
  auto field = [&](const char* a, const char* b = nullptr) -> const std::string* {
    if (f.count(a)) return &f[a];
    if (b && f.count(b)) return &f[b];
    return nullptr;
  };
  const std::string* dim = field("dimension");
  const std::string* sizes = field("sizes");
  const std::string* type = field("type");
  const std::string* enc = field("encoding");
  if (!dim || !sizes || !type || !enc)
    refuse(name, "a NRRD header needs dimension, type, sizes and encoding");
  const auto d = integers(*dim, name, "dimension");
  if (d.size() != 1 || d[0] < 1 || d[0] > 16) refuse(name, "dimension must be 1..16");
  const auto s = integers(*sizes, name, "sizes");
  if (static_cast<std::int64_t>(s.size()) != d[0])
    refuse(name, "sizes has " + std::to_string(s.size()) + " numbers for dimension " +
                     std::to_string(d[0]));
  set_sizes(out, s, name, "sizes");
  out.datatype = nrrd_datatype(ascii_lower(*type));
  out.element_bytes = datatype_bytes(out.datatype);
  if (!out.element_bytes) refuse(name, "type \"" + *type + "\" is not a scalar type that is read");
  out.data_bytes = checked_mul(out.voxels, out.element_bytes);
  if (out.data_bytes < 0) refuse(name, "the data size overflows 64 bits");
  const std::string e = ascii_lower(*enc);
  if (e == "raw")
    out.encoding = Encoding::kRaw;
  else if (e == "gzip" || e == "gz")
    out.encoding = Encoding::kGzip;
  else if (e == "ascii" || e == "text" || e == "txt" || e == "hex")
    out.encoding = Encoding::kOther, out.binary = false;
  else
    refuse(name, "encoding \"" + *enc + "\" is not read (raw, gzip, ascii or hex)");
  if (const auto* df = field("data file", "datafile")) out.data_file = data_file_in(dir, *df, name);
  if (const auto* bs = field("byte skip", "byteskip")) {
    const auto v = integers(*bs, name, "byte skip");
    if (v.size() != 1 || v[0] < -1 || (v[0] == -1 && out.encoding != Encoding::kRaw))
      refuse(name, "byte skip must be a whole number >= 0 (or -1 with raw encoding)");
    // With a compressed encoding the skip is counted in decompressed bytes: ITK reads those.
    const bool compressed = out.encoding == Encoding::kGzip;
    out.data_offset = compressed ? 0 : v[0];
    out.binary = out.binary && !(compressed && v[0] > 0);
  }
  if (const auto* ls = field("line skip", "lineskip")) {
    const auto v = integers(*ls, name, "line skip");
    if (v.size() != 1 || v[0] < 0) refuse(name, "line skip must be a whole number >= 0");
    out.binary = out.binary && v[0] == 0;
  }
  if (out.element_bytes > 1 && out.binary) {
    const std::string* endian = field("endian");
    if (!endian || (ascii_lower(*endian) != "little" && ascii_lower(*endian) != "big"))
      refuse(name, "endian (little or big) is required for " + std::to_string(out.element_bytes) +
                       "-byte binary data");
    out.swap = (ascii_lower(*endian) == "big") != machine_is_big_endian();
  }
  if (const auto* sd = field("space directions")) {
    const auto m = numbers(*sd, name, "space directions");
    check_orientation(m, s.size(), name, "space directions");
  }
  if (const auto* so = field("space origin")) {
    for (double v : numbers(*so, name, "space origin"))
      if (std::isnan(v)) refuse(name, "space origin is not finite");
  }
  if (const auto* sp = field("spacings")) {
    const auto v = numbers(*sp, name, "spacings");
    for (std::size_t i = 0; i < std::min<std::size_t>(3, v.size()); ++i)
      if (!(std::isfinite(v[i]) && v[i] != 0))
        refuse(name, "spacings has a zero or missing spacing for axis " + std::to_string(i));
  }
  return out;
}

HeaderFacts parse_metaimage_header(std::string_view text, const std::string& name,
                                   const std::string& dir) {
  HeaderFacts out;
  out.format = "metaimage";
  std::map<std::string, std::string> f;
  for (auto& [k, v] : key_values(text, '=', name)) f[k] = v;
  auto field = [&](const char* k) -> const std::string* { return f.count(k) ? &f[k] : nullptr; };
  if (const auto* ot = field("objecttype"); ot && ascii_lower(*ot) != "image")
    refuse(name, "ObjectType is \"" + *ot + "\", not Image");
  const std::string* nd = field("ndims");
  const std::string* ds = field("dimsize");
  const std::string* et = field("elementtype");
  const std::string* edf = field("elementdatafile");
  if (!nd || !ds || !et || !edf)
    refuse(name, "a MetaImage header needs NDims, DimSize, ElementType and ElementDataFile");
  const auto n = integers(*nd, name, "NDims");
  if (n.size() != 1 || n[0] < 1 || n[0] > 10) refuse(name, "NDims must be 1..10");
  const auto s = integers(*ds, name, "DimSize");
  if (static_cast<std::int64_t>(s.size()) != n[0])
    refuse(name, "DimSize has " + std::to_string(s.size()) + " numbers for NDims " +
                     std::to_string(n[0]));
  set_sizes(out, s, name, "DimSize");
  static const std::map<std::string, int> kTypes = {
      // as NIfTI datatype codes
      {"met_char", 256},       {"met_uchar", 2},         {"met_short", 4},  {"met_ushort", 512},
      {"met_int", 8},          {"met_uint", 768},        {"met_long", 8},   {"met_ulong", 768},
      {"met_long_long", 1024}, {"met_ulong_long", 1280}, {"met_float", 16}, {"met_double", 64}};
  auto t = kTypes.find(ascii_lower(*et));
  if (t == kTypes.end()) refuse(name, "ElementType " + *et + " is not a scalar type that is read");
  out.datatype = t->second;
  for (const char* k : {"binarydatabyteordermsb", "elementbyteordermsb"})
    if (const auto* msb = field(k))
      out.swap = (ascii_lower(*msb) == "true") != machine_is_big_endian();
  if (const auto* bin = field("binarydata"); bin && ascii_lower(*bin) != "true")
    refuse(name, "BinaryData = " + *bin + ": text MetaImage data is not read");
  std::int64_t channels = 1;
  if (const auto* c = field("elementnumberofchannels")) {
    const auto v = integers(*c, name, "ElementNumberOfChannels");
    if (v.size() != 1 || v[0] < 1) refuse(name, "ElementNumberOfChannels must be >= 1");
    if (v[0] != 1)
      refuse(name,
             "has " + std::to_string(v[0]) + " components per voxel; a scalar volume is expected");
    channels = v[0];
  }
  out.element_bytes = datatype_bytes(t->second) * static_cast<int>(channels);
  out.data_bytes = checked_mul(out.voxels, out.element_bytes);
  if (out.data_bytes < 0) refuse(name, "the data size overflows 64 bits");
  if (const auto* c = field("compresseddata"); c && ascii_lower(*c) == "true")
    out.encoding = Encoding::kZlib;
  if (const auto* hs = field("headersize")) {
    const auto v = integers(*hs, name, "HeaderSize");
    if (v.size() != 1 || v[0] < -1) refuse(name, "HeaderSize must be a whole number >= -1");
    out.data_offset = v[0];
  }
  if (ascii_lower(*edf) != "local") out.data_file = data_file_in(dir, *edf, name);
  for (const char* k : {"elementspacing", "elementsize"}) {
    if (const auto* sp = field(k)) {
      const auto v = numbers(*sp, name, k);
      for (double x : v)
        if (!(x > 0)) refuse(name, std::string(k) + " must be positive");
    }
  }
  for (const char* k : {"offset", "origin", "position"}) {
    if (const auto* o = field(k))
      for (double x : numbers(*o, name, k))
        if (std::isnan(x)) refuse(name, std::string(k) + " is not finite");
  }
  for (const char* k : {"transformmatrix", "rotation", "orientation"}) {
    if (const auto* m = field(k)) {
      const auto v = numbers(*m, name, k);
      if (v.size() != static_cast<std::size_t>(n[0] * n[0]))
        refuse(name, std::string(k) + " needs NDims x NDims numbers");
      if (n[0] == 3) check_orientation(v, 3, name, k);
    }
  }
  return out;
}

}  // namespace spineparse::io
