// Reading: a whole file read as gzip when it starts with gzip's magic bytes, else as the plain
// bytes it holds: what zlib's gzread reads, decompressed with ISA-L's inflate (about twice zlib's
// speed on MR data). As gzread: members follow one another (bgzip, pigz, cat a.gz b.gz), and
// bytes after a member that do not start another are ignored. Every member's CRC-32 and length
// are checked. Writing: write_gzip, below.
#pragma once

#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

struct inflate_state;

namespace spineparse::io {

class GzipFile {
 public:
  GzipFile();
  ~GzipFile();
  GzipFile(const GzipFile&) = delete;
  GzipFile& operator=(const GzipFile&) = delete;

  // "" or why the file cannot be read.
  std::string open(const std::string& path);
  // Up to n bytes; fewer only at the end of the data; 0 at its end; -1 on an error (problem()).
  // A stream that ends inside a member returns what it holds, then 0, with problem() saying so.
  long read(unsigned char* out, std::size_t n);
  // Reads and drops n bytes; false when the data ends first or is damaged.
  bool skip(std::int64_t n);
  // What went wrong: "" while all is well and at a clean end.
  const std::string& problem() const { return problem_; }

 private:
  long inflate_some(unsigned char* out, std::size_t n);
  bool refill();               // more input after what is left; false at the file's end
  bool next_member_follows();  // after a member: whether another starts here

  std::FILE* file_ = nullptr;
  bool gzip_ = false, file_end_ = false, end_ = false;
  std::unique_ptr<inflate_state> state_;
  std::vector<unsigned char> in_;
  std::string problem_;
};

// Writing: `parts`, one after another, as a single gzip member in a new file `path` (ISA-L's
// deflate at level 1: 2.5-5.5x zlib level 1's speed on label maps and MR volumes, within a few
// per cent of its size or smaller). Throws std::runtime_error whose message is the reason alone
// (the system's, for a full disk or a file size limit) when the file cannot be created or
// written; the caller names the file and removes it.
struct ByteSpan {
  const void* data;
  std::size_t size;
};
void write_gzip(const std::string& path, std::initializer_list<ByteSpan> parts);

}  // namespace spineparse::io
