// GzipFile reads what zlib's gzread reads: the same bytes from whole, multi-member, headed
// (name, extra, comment, header CRC), stored and plain files, trailing bytes ignored, and a
// problem wherever gzread finds one (truncation anywhere, a bad CRC or length, damaged data),
// whatever the size of the reads; and it leaves the vector registers' upper halves clear.
// write_gzip writes one member gzread reads back, and throws the reason when a write fails.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include "io/gzip_file.hpp"
#include "spineparse/vector_state.hpp"

namespace fs = std::filesystem;
using spineparse::io::GzipFile;

namespace {

// MR-like bytes: a smooth ramp with noise (compresses, but not to nothing).
std::string sample_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i / 97) % 200 + rng() % 24);
  return s;
}

// One gzip member of `data` at `level`; with `headed`, a name, an extra field, a comment and a
// header CRC as well.
std::string gzip_member(const std::string& data, int level = 6, bool headed = false) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  gz_header h{};
  char name[] = "case.nii", comment[] = "a comment";
  unsigned char extra[] = {'S', 'P', 2, 0, 7, 9};
  if (headed) {
    h.name = reinterpret_cast<Bytef*>(name);
    h.comment = reinterpret_cast<Bytef*>(comment);
    h.extra = extra;
    h.extra_len = sizeof extra;
    h.hcrc = 1;
    deflateSetHeader(&z, &h);
  }
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

struct Outcome {
  std::string bytes;
  bool problem = false;
};

std::string write_temp(const std::string& bytes) {
  static int n = 0;
  const fs::path p = fs::temp_directory_path() /
                     ("spineparse_gzip_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
  std::FILE* f = std::fopen(p.c_str(), "wb");
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
  return p.string();
}

Outcome with_gzread(const std::string& path) {
  Outcome o;
  gzFile g = gzopen(path.c_str(), "rb");
  char buf[4096];
  int got;
  while ((got = gzread(g, buf, sizeof buf)) > 0) o.bytes.append(buf, static_cast<std::size_t>(got));
  int err = Z_OK;
  gzerror(g, &err);
  o.problem = got < 0 || (err != Z_OK);
  gzclose(g);
  return o;
}

Outcome with_gzip_file(const std::string& path, std::size_t chunk) {
  Outcome o;
  GzipFile f;
  EXPECT_EQ(f.open(path), "");
  std::string buf(chunk, '\0');
  long got;
  while ((got = f.read(reinterpret_cast<unsigned char*>(buf.data()), chunk)) > 0)
    o.bytes.append(buf.data(), static_cast<std::size_t>(got));
  o.problem = got < 0 || !f.problem().empty();
  return o;
}

// Both readers on the same file bytes, reads of several sizes; returns gzread's outcome.
Outcome expect_as_gzread(const std::string& file_bytes, const std::string& what) {
  const std::string path = write_temp(file_bytes);
  const Outcome ref = with_gzread(path);
  for (const std::size_t chunk : {std::size_t{1}, std::size_t{777}, std::size_t{1} << 20}) {
    const Outcome got = with_gzip_file(path, chunk);
    EXPECT_EQ(got.problem, ref.problem) << what << ", reads of " << chunk;
    if (!ref.problem) {
      EXPECT_EQ(got.bytes.size(), ref.bytes.size()) << what << ", reads of " << chunk;
      EXPECT_TRUE(got.bytes == ref.bytes) << what << ", reads of " << chunk;
    }
  }
  fs::remove(path);
  return ref;
}

}  // namespace

TEST(GzipFile, ReadsWhatGzreadReadsFromGoodFiles) {
  const std::string a = sample_bytes(300000, 1), b = sample_bytes(70001, 2);
  EXPECT_EQ(expect_as_gzread(gzip_member(a), "one member").bytes, a);
  EXPECT_EQ(expect_as_gzread(gzip_member(a, 1) + gzip_member(b, 9), "two members").bytes, a + b);
  EXPECT_EQ(expect_as_gzread(gzip_member(a, 0), "stored").bytes, a);
  EXPECT_EQ(expect_as_gzread(gzip_member(b, 6, true), "name, extra, comment, header CRC").bytes, b);
  EXPECT_EQ(expect_as_gzread(gzip_member("") + gzip_member(b), "an empty member first").bytes, b);
  EXPECT_EQ(expect_as_gzread(a, "plain bytes").bytes, a);
  EXPECT_EQ(expect_as_gzread("", "an empty file").bytes, "");
  EXPECT_EQ(expect_as_gzread("\x1f", "one byte").bytes, "\x1f");
  EXPECT_EQ(expect_as_gzread(gzip_member(b) + std::string(100, '\0'), "zeros after").bytes, b);
  EXPECT_EQ(expect_as_gzread(gzip_member(b) + "trailing text", "text after").bytes, b);
}

TEST(GzipFile, FindsAProblemWhereGzreadDoes) {
  const std::string a = sample_bytes(200000, 3), z = gzip_member(a);
  for (const std::size_t keep :
       {std::size_t{5}, std::size_t{11}, z.size() / 2, z.size() - 8, z.size() - 5, z.size() - 1}) {
    const Outcome o = expect_as_gzread(z.substr(0, keep), "cut to " + std::to_string(keep));
    EXPECT_TRUE(o.problem) << "cut to " << keep;
  }
  for (const std::size_t at : {z.size() - 8, z.size() - 3}) {  // the CRC, the length
    std::string bad = z;
    bad[at] = static_cast<char>(bad[at] ^ 0x40);
    EXPECT_TRUE(expect_as_gzread(bad, "trailer byte " + std::to_string(at)).problem);
  }
  std::string bad = z;
  bad[z.size() / 3] = static_cast<char>(bad[z.size() / 3] ^ 0xff);
  EXPECT_TRUE(expect_as_gzread(bad, "a damaged byte").problem);
  EXPECT_TRUE(expect_as_gzread(z + z.substr(0, z.size() / 2), "a cut second member").problem);
}

TEST(GzipFile, SkipsToAnOffsetAndSaysWhenTheDataEndsFirst) {
  const std::string a = sample_bytes(100000, 4);
  const std::string path = write_temp(gzip_member(a));
  GzipFile f;
  ASSERT_EQ(f.open(path), "");
  ASSERT_TRUE(f.skip(352));
  std::string buf(10, '\0');
  ASSERT_EQ(f.read(reinterpret_cast<unsigned char*>(buf.data()), buf.size()), 10);
  EXPECT_EQ(buf, a.substr(352, 10));
  GzipFile g;
  ASSERT_EQ(g.open(path), "");
  EXPECT_FALSE(g.skip(100001));
  GzipFile missing;
  EXPECT_NE(missing.open(path + ".none"), "");
  fs::remove(path);
}

// ISA-L's AVX inflate returns with the upper halves in use; left so, every later SSE instruction
// on the thread (any stage's code) pays for it (evaluate ran 40 % slower after a read).
TEST(GzipFile, LeavesTheUpperVectorStateClear) {
  if (!spineparse::upper_vector_state_in_use()) GTEST_SKIP() << "XGETBV cannot report XINUSE here";
  const std::string path = write_temp(gzip_member(sample_bytes(1 << 20, 5)));
  GzipFile f;
  ASSERT_EQ(f.open(path), "");
  std::string buf(1 << 16, '\0');
  ASSERT_GT(f.read(reinterpret_cast<unsigned char*>(buf.data()), buf.size()), 0);
  EXPECT_FALSE(*spineparse::upper_vector_state_in_use());
  fs::remove(path);
}

// write_gzip's file is one gzip member that gzread reads back as the parts one after another
// (empty parts, a part larger than its output buffer), and the reader here as well.
TEST(WriteGzip, GzreadReadsThePartsBackInOrder) {
  const std::string a = sample_bytes(352, 1), b = sample_bytes(3 << 20, 2), c = "tail";
  const std::string path = write_temp("");
  spineparse::io::write_gzip(path, {{a.data(), a.size()}, {nullptr, 0}, {b.data(), b.size()},
                                    {c.data(), c.size()}});
  const Outcome got = with_gzread(path);
  EXPECT_FALSE(got.problem);
  EXPECT_TRUE(got.bytes == a + b + c);
  EXPECT_TRUE(with_gzip_file(path, 1 << 20).bytes == a + b + c);
  EXPECT_LT(fs::file_size(path), b.size());  // compressed
  spineparse::io::write_gzip(path, {{nullptr, 0}});  // nothing: still a whole, empty member
  EXPECT_EQ(with_gzread(path).bytes, "");
  EXPECT_FALSE(with_gzread(path).problem);
  fs::remove(path);
}

// A write that fails (a full device) or a file that cannot be created throws the reason.
TEST(WriteGzip, AFailedWriteThrowsTheSystemsReason) {
  const std::string b = sample_bytes(3 << 20, 3);
  try {
    spineparse::io::write_gzip("/dev/full", {{b.data(), b.size()}});
    ADD_FAILURE() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), std::strerror(ENOSPC));
  }
  EXPECT_THROW(spineparse::io::write_gzip("/nonexistent/dir/x.gz", {{b.data(), 1}}),
               std::runtime_error);
}

TEST(WriteGzip, LeavesTheUpperVectorStateClear) {
  if (!spineparse::upper_vector_state_in_use()) GTEST_SKIP() << "XGETBV cannot report XINUSE here";
  const std::string b = sample_bytes(1 << 20, 4), path = write_temp("");
  spineparse::io::write_gzip(path, {{b.data(), b.size()}});
  EXPECT_FALSE(*spineparse::upper_vector_state_in_use());
  fs::remove(path);
}
