#ifndef CGFLOW_IO_BASE64_H_
#define CGFLOW_IO_BASE64_H_

#include <string>

namespace cgflow::io {

// Binary model files travel inside text formats (OpenMM's XML serialization) as base64.
/** Standard base64 alphabet with '=' padding. */
std::string base64Encode(const std::string& bytes);
/** Inverse of base64Encode. A length that is not a multiple of 4, characters outside the alphabet or misplaced padding -> Error. */
std::string base64Decode(const std::string& text);

} // namespace cgflow::io

#endif
