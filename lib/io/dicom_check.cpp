#include "io/dicom_check.hpp"

#include <gdcmReader.h>
#include <gdcmSequenceOfFragments.h>
#include <gdcmTag.h>
#include <gdcmTrace.h>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <thread>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <stdexcept>

namespace spineparse::io {

namespace {

[[noreturn]] void refuse(const std::string& name, const std::string& why) {
  throw std::runtime_error(name + ": " + why);
}

const gdcm::ByteValue* value_of(const gdcm::DataSet& ds, const gdcm::Tag& t) {
  if (!ds.FindDataElement(t)) return nullptr;
  return ds.GetDataElement(t).GetByteValue();
}

// An unsigned short element (US); nullopt when absent or short. GDCM's reader has already put
// the values of a big-endian data set into little-endian order.
std::optional<int> us_value(const gdcm::DataSet& ds, const gdcm::Tag& t) {
  const auto* bv = value_of(ds, t);
  if (!bv || bv->GetLength() < 2) return std::nullopt;
  const auto* p = reinterpret_cast<const unsigned char*>(bv->GetPointer());
  return (p[1] << 8) | p[0];
}

std::uint32_t u32(const char* p, bool big) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return big ? (std::uint32_t{u[0]} << 24) | (u[1] << 16) | (u[2] << 8) | u[3]
             : (std::uint32_t{u[3]} << 24) | (u[2] << 16) | (u[1] << 8) | u[0];
}

// The bytes the file holds after the header of its PixelData element, found by its tag followed
// by a header whose length is `declared` (explicit VR: OB/OW/UN; implicit VR); -1 when not found.
// GDCM reads a PixelData element cut short by the end of the file without complaint (the missing
// pixels come out as zeros), so this is checked on the bytes themselves.
std::int64_t pixel_bytes_in_file(const char* d, std::size_t n, std::uint32_t declared) {
  for (std::size_t at = 0; at + 8 <= n; ++at) {
    const bool le = d[at] == '\xe0' && d[at + 1] == '\x7f' && d[at + 2] == '\x10' && d[at + 3] == 0;
    const bool be = d[at] == '\x7f' && d[at + 1] == '\xe0' && d[at + 2] == 0 && d[at + 3] == '\x10';
    if (!le && !be) continue;
    const std::string vr(d + at + 4, 2);
    if (at + 12 <= n && (vr == "OW" || vr == "OB" || vr == "UN") && d[at + 6] == 0 &&
        d[at + 7] == 0 && u32(d + at + 8, be) == declared)
      return static_cast<std::int64_t>(n - at - 12);
    if (le && u32(d + at + 4, false) == declared) return static_cast<std::int64_t>(n - at - 8);
  }
  return -1;
}

std::optional<std::string> text_value(const gdcm::DataSet& ds, const gdcm::Tag& t) {
  const auto* bv = value_of(ds, t);
  if (!bv) return std::nullopt;
  std::string s(bv->GetPointer(), bv->GetLength());
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  while (!s.empty() && s.front() == ' ') s.erase(0, 1);
  return s;
}

void check_pixel_module(const gdcm::DataSet& ds, const std::string& name, DicomFileFacts& f) {
  const int samples = us_value(ds, gdcm::Tag(0x0028, 0x0002)).value_or(1);
  if (samples != 1)
    refuse(name, "SamplesPerPixel " + std::to_string(samples) +
                     " (colour or multi-sample pixels): not a single-channel MR image");
  const auto rows = us_value(ds, gdcm::Tag(0x0028, 0x0010));
  const auto cols = us_value(ds, gdcm::Tag(0x0028, 0x0011));
  if (!rows || !cols || *rows == 0 || *cols == 0)
    refuse(name, "no Rows and Columns (or zero): not an image");
  f.rows = *rows;
  f.columns = *cols;
  const auto alloc = us_value(ds, gdcm::Tag(0x0028, 0x0100));
  if (!alloc) refuse(name, "no BitsAllocated");
  if (*alloc != 8 && *alloc != 16 && *alloc != 32)
    refuse(name, "BitsAllocated " + std::to_string(*alloc) +
                     " is not supported (8, 16 or 32 bits per pixel)");
  f.bits_allocated = *alloc;
  f.bits_stored = us_value(ds, gdcm::Tag(0x0028, 0x0101)).value_or(*alloc);
  const int high = us_value(ds, gdcm::Tag(0x0028, 0x0102)).value_or(f.bits_stored - 1);
  if (f.bits_stored < 1 || f.bits_stored > *alloc || high != f.bits_stored - 1)
    refuse(name, "BitsStored " + std::to_string(f.bits_stored) + " and HighBit " +
                     std::to_string(high) + " do not fit BitsAllocated " + std::to_string(*alloc));
  f.pixel_representation = us_value(ds, gdcm::Tag(0x0028, 0x0103)).value_or(0);
  if (f.pixel_representation != 0 && f.pixel_representation != 1)
    refuse(name, "PixelRepresentation " + std::to_string(f.pixel_representation) +
                     " (must be 0 or 1)");
  if (auto frames = text_value(ds, gdcm::Tag(0x0028, 0x0008)); frames && !frames->empty() &&
                                                                 *frames != "1")
    refuse(name, "a multi-frame object (" + *frames + " frames in one file)");
}

void check_pixel_data(const gdcm::DataSet& ds, const char* bytes, std::size_t size, bool deflated,
                      const std::string& name, DicomFileFacts& f) {
  const gdcm::Tag pixel(0x7fe0, 0x0010);
  if (!ds.FindDataElement(pixel)) refuse(name, "no PixelData");
  const gdcm::DataElement& de = ds.GetDataElement(pixel);
  if (de.GetSequenceOfFragments()) {
    f.encapsulated = true;
    return;
  }
  const auto* bv = de.GetByteValue();
  const std::uint64_t have = bv ? static_cast<std::uint64_t>(static_cast<std::uint32_t>(bv->GetLength())) : 0;
  const std::uint64_t want = static_cast<std::uint64_t>(f.rows) * static_cast<std::uint64_t>(f.columns) *
                             static_cast<std::uint64_t>(f.bits_allocated / 8);
  if (have < want || have > want + 1)  // one byte of padding to an even length
    refuse(name, "PixelData holds " + std::to_string(have) + " bytes, but Rows x Columns x " +
                     "BitsAllocated/8 = " + std::to_string(f.rows) + " x " +
                     std::to_string(f.columns) + " x " + std::to_string(f.bits_allocated / 8) +
                     " = " + std::to_string(want) +
                     (have < want ? " (a truncated file, or Rows/Columns that disagree with it)"
                                  : " (Rows/Columns disagree with it)"));
  if (deflated) return;  // the bytes on disk are compressed as a whole
  const std::int64_t in_file = pixel_bytes_in_file(bytes, size, static_cast<std::uint32_t>(have));
  if (in_file >= 0 && static_cast<std::uint64_t>(in_file) < want)
    refuse(name, "truncated: its PixelData needs " + std::to_string(want) +
                     " bytes, but the file ends " + std::to_string(in_file) + " bytes into it");
}

void check_geometry(const gdcm::DataSet& ds, const std::string& name, DicomFileFacts& f) {
  if (auto o = text_value(ds, gdcm::Tag(0x0020, 0x0037))) {
    if (!finite_numbers(*o, 6, f.orientation.data()))
      refuse(name, "ImageOrientationPatient '" + *o + "' is not 6 finite numbers");
    const auto& v = f.orientation;
    const double lr = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    const double lc = std::sqrt(v[3] * v[3] + v[4] * v[4] + v[5] * v[5]);
    const double dot = v[0] * v[3] + v[1] * v[4] + v[2] * v[5];
    if (std::abs(lr - 1) > 1e-2 || std::abs(lc - 1) > 1e-2 || std::abs(dot) > 1e-2)
      refuse(name, "ImageOrientationPatient '" + *o +
                       "' is not two orthogonal unit vectors (lengths " + std::to_string(lr) +
                       " and " + std::to_string(lc) + ", dot product " + std::to_string(dot) + ")");
    f.has_orientation = true;
  }
  if (auto p = text_value(ds, gdcm::Tag(0x0020, 0x0032))) {
    if (!finite_numbers(*p, 3, f.position.data()))
      refuse(name, "ImagePositionPatient '" + *p + "' is not 3 finite numbers");
    f.has_position = true;
  }
  if (auto s = text_value(ds, gdcm::Tag(0x0028, 0x0030))) {
    if (!finite_numbers(*s, 2, f.pixel_spacing.data()) || !(f.pixel_spacing[0] > 0) ||
        !(f.pixel_spacing[1] > 0))
      refuse(name, "PixelSpacing '" + *s + "' is not two positive numbers");
    f.has_pixel_spacing = true;
  } else {
    f.warnings.push_back("no PixelSpacing: the pixels are taken as 1 x 1 mm");
  }
}

DicomFileFacts check(gdcm::Reader& reader, const char* bytes, std::size_t size,
                     const std::string& name) {
  gdcm::Trace::WarningOff();
  gdcm::Trace::ErrorOff();
  bool read = false;
  try {
    read = reader.Read();
  } catch (const std::exception& e) {
    refuse(name, std::string("cannot be parsed as DICOM (") + e.what() + ")");
  }
  if (!read) refuse(name, "cannot be parsed as DICOM (truncated or damaged?)");
  const gdcm::File& file = reader.GetFile();
  const gdcm::DataSet& ds = file.GetDataSet();
  const bool deflated =
      file.GetHeader().GetDataSetTransferSyntax() == gdcm::TransferSyntax::DeflatedExplicitVRLittleEndian;
  DicomFileFacts f;
  check_pixel_module(ds, name, f);
  check_pixel_data(ds, bytes, size, deflated, name, f);
  check_geometry(ds, name, f);
  return f;
}

}  // namespace

bool finite_numbers(const std::string& s, std::size_t n, double* out) {
  std::istringstream in(s);
  std::size_t k = 0;
  for (std::string part; std::getline(in, part, '\\');) {
    while (!part.empty() && part.back() == ' ') part.pop_back();
    while (!part.empty() && part.front() == ' ') part.erase(0, 1);
    char* end = nullptr;
    const double v = std::strtod(part.c_str(), &end);
    if (part.empty() || *end != '\0' || !std::isfinite(v) || k >= n) return false;
    out[k++] = v;
  }
  return k == n;
}

DicomFileFacts check_dicom_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) refuse(path, "cannot be opened");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return check_dicom_bytes(bytes.data(), bytes.size(), path);
}

DicomFileFacts check_dicom_bytes(const char* data, std::size_t size, const std::string& name) {
  std::istringstream in(std::string(data, size));
  gdcm::Reader reader;
  reader.SetStream(in);
  return check(reader, data, size, name);
}

std::string serialise(const DicomFileFacts& f) {
  std::ostringstream o;
  o.precision(17);
  o << f.rows << ' ' << f.columns << ' ' << f.bits_allocated << ' ' << f.bits_stored << ' '
    << f.pixel_representation << ' ' << f.has_orientation << ' ' << f.has_position << ' '
    << f.has_pixel_spacing << ' ' << f.encapsulated << '\n';
  for (double v : f.orientation) o << v << ' ';
  for (double v : f.position) o << v << ' ';
  for (double v : f.pixel_spacing) o << v << ' ';
  o << '\n';
  for (const auto& w : f.warnings) o << "W " << w << '\n';
  return o.str();
}

DicomFileFacts deserialise(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  DicomFileFacts f;
  in >> f.rows >> f.columns >> f.bits_allocated >> f.bits_stored >> f.pixel_representation >>
      f.has_orientation >> f.has_position >> f.has_pixel_spacing >> f.encapsulated;
  for (double& v : f.orientation) in >> v;
  for (double& v : f.position) in >> v;
  for (double& v : f.pixel_spacing) in >> v;
  if (!in) refuse(name, "the DICOM check helper answered nonsense");
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line))
    if (line.rfind("W ", 0) == 0) f.warnings.push_back(line.substr(2));
  return f;
}

namespace {

// spineparse-dicom-check beside this executable (or SPINEPARSE_DICOM_CHECK); "" when absent.
std::string helper_path() {
  if (const char* env = std::getenv("SPINEPARSE_DICOM_CHECK")) return env;
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  const auto helper = self.parent_path() / "spineparse-dicom-check";
  return std::filesystem::exists(helper, ec) ? helper.string() : "";
}

// Runs the helper on `path`; its output, or throws naming the file when it died or hung.
std::string run_helper(const std::string& helper, const std::string& path) {
  int fds[2];
  if (::pipe(fds) != 0) refuse(path, "cannot start the DICOM check helper (pipe)");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  posix_spawn_file_actions_addclose(&fa, fds[1]);
  std::string a0 = helper, a1 = path;
  char* argv[] = {a0.data(), a1.data(), nullptr};
  pid_t pid = 0;
  const int rc = ::posix_spawn(&pid, helper.c_str(), &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    refuse(path, "cannot start the DICOM check helper " + helper);
  }
  std::string out;
  char buf[4096];
  for (;;) {  // the helper writes at most a few hundred bytes, then exits
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) out.append(buf, static_cast<std::size_t>(n));
    if (n == 0 || (n < 0 && errno != EINTR)) break;
  }
  ::close(fds[0]);
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      refuse(path, "the DICOM parser (GDCM) took over 30 s on it: a damaged file");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (WIFSIGNALED(status))
    refuse(path, "the DICOM parser (GDCM) aborted on it (signal " +
                     std::to_string(WTERMSIG(status)) + "): a damaged file");
  return out;
}

}  // namespace

DicomFileFacts check_dicom_file_isolated(const std::string& path) {
  const std::string helper = helper_path();
  if (helper.empty()) return check_dicom_file(path);
  const std::string out = run_helper(helper, path);
  if (out.rfind("OK\n", 0) == 0) return deserialise(out.substr(3), path);
  if (out.rfind("NO\n", 0) == 0) throw std::runtime_error(out.substr(3));
  refuse(path, "the DICOM check helper gave no answer");
}

}  // namespace spineparse::io
