// The output folder of a run: who may write into it (locks) and how its records name hosts and
// times. Private to the runtime.
#pragma once

#include <ctime>
#include <string>

#include "spineparse/shard.hpp"

namespace spineparse {

std::string host_name();
std::string utc_time(std::time_t t);                  // "2026-12-01T09:30:00Z"
std::time_t parse_utc_time(const std::string& text);  // -1 when not utc_time's form

// One run per output folder: POSIX locks (which also work on NFS) held for the object's life.
// An unsharded run (and `merge`) holds OUTPUT/.spineparse.lock exclusively; a shard holds it
// shared (so shards of one run coexist) and OUTPUT/shards/.K-of-N.lock exclusively. The exclusive
// lock's file holds "pid host" of its owner for the message of a refused run. Throws RunError
// naming the holder when the folder is in use.
class OutputLock {
 public:
  OutputLock(const std::string& dir, const Shard& shard);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

 private:
  int take(const std::string& path, short type, const std::string& what);
  int main_ = -1;
  int shard_ = -1;
};

}  // namespace spineparse
