#ifndef CGFLOW_COORDS_BATCHARGUMENTS_H_
#define CGFLOW_COORDS_BATCHARGUMENTS_H_

// Private to core/src/coords: the argument check every batched CG-map entry point makes.
#include "cgflow/Error.h"
#include <string>

namespace cgflow::coords::detail {

inline void checkBatch(int batchSize, const void* in, const void* out, const char* inName, const char* outName) {
    if (batchSize < 0)
        throw Error("batchSize must be non-negative, got " + std::to_string(batchSize));
    if (batchSize > 0 && in == nullptr)
        throw Error(std::string(inName) + " is null but batchSize is " + std::to_string(batchSize));
    if (batchSize > 0 && out == nullptr)
        throw Error(std::string(outName) + " is null but batchSize is " + std::to_string(batchSize));
}

} // namespace cgflow::coords::detail

#endif
