#include "io/gzip_file.hpp"

#include <isa-l/igzip_lib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "spineparse/vector_state.hpp"

namespace spineparse::io {

namespace {
constexpr std::size_t kInput = std::size_t{1} << 18;

std::string inflate_problem(int rc) {
  switch (rc) {
    case ISAL_INVALID_BLOCK:
      return "invalid compressed block";
    case ISAL_INVALID_SYMBOL:
      return "invalid code in the compressed data";
    case ISAL_INVALID_LOOKBACK:
      return "invalid distance in the compressed data";
    case ISAL_INVALID_WRAPPER:
      return "invalid gzip header";
    case ISAL_UNSUPPORTED_METHOD:
      return "unknown compression method";
    case ISAL_INCORRECT_CHECKSUM:
      return "incorrect data check (CRC-32 or length)";
    default:
      return "compressed data is corrupt (inflate error " + std::to_string(rc) + ")";
  }
}
}  // namespace

GzipFile::GzipFile() : state_(std::make_unique<inflate_state>()), in_(kInput) {
  isal_inflate_init(state_.get());
  state_->crc_flag = ISAL_GZIP;
  state_->avail_in = 0;
}

GzipFile::~GzipFile() {
  if (file_) std::fclose(file_);
}

std::string GzipFile::open(const std::string& path) {
  file_ = std::fopen(path.c_str(), "rb");
  if (!file_) return "cannot open " + path;
  while (state_->avail_in < 2 && refill()) {
  }
  if (!problem_.empty()) return problem_;
  gzip_ = state_->avail_in >= 2 && state_->next_in[0] == 0x1f && state_->next_in[1] == 0x8b;
  return "";
}

bool GzipFile::refill() {
  if (file_end_) return false;
  const std::size_t kept = state_->avail_in;
  if (kept) std::memmove(in_.data(), state_->next_in, kept);
  const std::size_t got = std::fread(in_.data() + kept, 1, in_.size() - kept, file_);
  if (got < in_.size() - kept) {
    file_end_ = true;
    if (std::ferror(file_)) problem_ = "read error";
  }
  state_->next_in = in_.data();
  state_->avail_in = static_cast<std::uint32_t>(kept + got);
  return got > 0;
}

bool GzipFile::next_member_follows() {
  while (state_->avail_in < 2 && refill()) {
  }
  if (state_->avail_in < 2 || state_->next_in[0] != 0x1f || state_->next_in[1] != 0x8b)
    return false;
  std::uint8_t* next = state_->next_in;
  const std::uint32_t avail = state_->avail_in;
  isal_inflate_reset(state_.get());
  state_->crc_flag = ISAL_GZIP;
  state_->next_in = next;
  state_->avail_in = avail;
  return true;
}

long GzipFile::inflate_some(unsigned char* out, std::size_t n) {
  inflate_state& s = *state_;
  s.next_out = out;
  s.avail_out = static_cast<std::uint32_t>(n);
  while (s.avail_out > 0) {
    if (s.block_state == ISAL_BLOCK_FINISH) {  // the member's trailer was checked
      if (next_member_follows()) continue;
      end_ = true;
      break;
    }
    const std::uint32_t in_before = s.avail_in, out_before = s.avail_out;
    const int before = s.block_state;
    if (s.avail_in > 0) {
      const int rc = isal_inflate(&s);
      clear_upper_vector_state();  // ISA-L leaves the upper halves in use
      if (rc < 0) {
        problem_ = inflate_problem(rc);
        return -1;
      }
    }
    const bool stuck =
        s.avail_in == in_before && s.avail_out == out_before && s.block_state == before;
    if (stuck && !refill()) {  // the file ends inside a member
      if (problem_.empty()) problem_ = "compressed stream ends early";
      end_ = true;
      break;
    }
  }
  return static_cast<long>(n - s.avail_out);
}

long GzipFile::read(unsigned char* out, std::size_t n) {
  if (end_ || n == 0) return 0;
  n = std::min<std::size_t>(n, UINT32_MAX);
  if (gzip_) return inflate_some(out, n);
  // Plain bytes: what open() looked at first, then the rest of the file.
  const std::size_t buffered = std::min<std::size_t>(n, state_->avail_in);
  std::memcpy(out, state_->next_in, buffered);
  state_->next_in += buffered;
  state_->avail_in -= static_cast<std::uint32_t>(buffered);
  std::size_t got = buffered;
  if (got < n && !file_end_) got += std::fread(out + got, 1, n - got, file_);
  if (std::ferror(file_)) {
    problem_ = "read error";
    return -1;
  }
  if (got == 0) end_ = true;
  return static_cast<long>(got);
}

bool GzipFile::skip(std::int64_t n) {
  std::vector<unsigned char> sink(std::size_t{1} << 16);
  while (n > 0) {
    const long got =
        read(sink.data(),
             static_cast<std::size_t>(std::min<std::int64_t>(n, std::int64_t(sink.size()))));
    if (got <= 0) return false;
    n -= got;
  }
  return true;
}

namespace {
// The FILE of a file being written, closed on every path out.
struct Output {
  std::FILE* f;
  ~Output() {
    if (f) std::fclose(f);
  }
  void put(const unsigned char* p, std::size_t n) {
    if (n && std::fwrite(p, 1, n, f) != n)
      throw std::runtime_error(std::strerror(errno));
  }
  void close() {
    const int rc = std::fclose(f);
    f = nullptr;
    if (rc != 0) throw std::runtime_error(std::strerror(errno));
  }
};
}  // namespace

void write_gzip(const std::string& path, std::initializer_list<ByteSpan> parts) {
  Output out{std::fopen(path.c_str(), "wb")};
  if (!out.f) throw std::runtime_error(std::string("cannot create it: ") + std::strerror(errno));
  auto stream = std::make_unique<isal_zstream>();
  isal_deflate_init(stream.get());
  std::vector<unsigned char> level(ISAL_DEF_LVL1_DEFAULT), buffer(std::size_t{1} << 20);
  isal_zstream& s = *stream;
  s.level = 1;
  s.level_buf = level.data();
  s.level_buf_size = static_cast<std::uint32_t>(level.size());
  s.gzip_flag = IGZIP_GZIP;
  s.flush = NO_FLUSH;
  // Deflates n bytes at p; `last`: ends the stream (the final block and the gzip trailer).
  auto deflate = [&](const unsigned char* p, std::size_t n, bool last) {
    s.next_in = const_cast<std::uint8_t*>(p);
    s.avail_in = static_cast<std::uint32_t>(n);
    s.end_of_stream = last;
    do {
      s.next_out = buffer.data();
      s.avail_out = static_cast<std::uint32_t>(buffer.size());
      const int rc = isal_deflate(&s);
      clear_upper_vector_state();  // ISA-L leaves the upper halves in use
      if (rc != COMP_OK) throw std::runtime_error("deflate error " + std::to_string(rc));
      out.put(buffer.data(), buffer.size() - s.avail_out);
    } while (s.avail_in > 0 || (last && s.internal_state.state != ZSTATE_END));
  };
  constexpr std::size_t kPiece = std::size_t{1} << 30;  // avail_in is 32 bits
  for (const ByteSpan& part : parts)
    for (std::size_t at = 0; at < part.size; at += kPiece)
      deflate(static_cast<const unsigned char*>(part.data) + at, std::min(part.size - at, kPiece),
              false);
  deflate(nullptr, 0, true);
  out.close();
}

}  // namespace spineparse::io
