#ifndef CGFLOW_IO_FILEUTILS_H_
#define CGFLOW_IO_FILEUTILS_H_

#include <string>

namespace cgflow::io {

/** The whole file as bytes. Missing, unreadable or a directory -> Error naming the path. */
std::string readFileBytes(const std::string& path);

/**
 * Replace path with bytes so that readers see either the old file or the complete new one,
 * never a partial write: the data goes to a temporary file in the same directory
 * (path + ".tmp.<pid>.<random>"), is fsync'ed and renamed over path. The temporary file is
 * removed on failure. Any failure -> Error naming the path.
 */
void writeFileAtomic(const std::string& path, const std::string& bytes);

} // namespace cgflow::io

#endif
